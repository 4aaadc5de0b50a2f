from __future__ import annotations

import datetime as dt
from itertools import pairwise
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.core.types import Description, reject_null

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

CalendarName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(examples=["Kundeservice København"]),
]
HolidayName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(examples=["Grundlovsdag"]),
]
_CLOCK = r"([01]\d|2[0-3]):[0-5]\d"


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"not a known IANA time zone: {name!r}") from exc
    return name


TimeZoneName = Annotated[
    str,
    Field(max_length=64, examples=["Europe/Copenhagen"]),
    AfterValidator(_check_timezone),
]


class OpeningInterval(BaseModel):
    """Local wall-clock opening and closing times; "24:00" closes at the end of the day."""

    model_config = ConfigDict(extra="forbid")

    start: str = Field(pattern=f"^{_CLOCK}$", examples=["08:00"])
    end: str = Field(pattern=f"^({_CLOCK}|24:00)$", examples=["16:00"])

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: str, info: ValidationInfo) -> str:
        start = info.data.get("start")
        if start is not None and end <= start:  # "HH:MM" strings sort as the times do
            raise ValueError(f"must be after the start ({start})")
        return end

    def as_times(self) -> tuple[dt.time, dt.time | None]:
        end = None if self.end == "24:00" else dt.time.fromisoformat(self.end)
        return dt.time.fromisoformat(self.start), end


DayHours = Annotated[list[OpeningInterval], Field(max_length=24)]


class WeeklyHours(BaseModel):
    """Opening hours per weekday. Overnight opening is two intervals: Monday "22:00"-"24:00"
    and Tuesday "00:00"-"06:00"; the count runs on across midnight."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    day: [{"start": "08:00", "end": "16:00"}]
                    for day in ("mon", "tue", "wed", "thu", "fri")
                }
            ]
        },
    )

    mon: DayHours = []
    tue: DayHours = []
    wed: DayHours = []
    thu: DayHours = []
    fri: DayHours = []
    sat: DayHours = []
    sun: DayHours = []

    @field_validator(*WEEKDAYS)
    @classmethod
    def _no_overlap(cls, intervals: list[OpeningInterval]) -> list[OpeningInterval]:
        ordered = sorted(intervals, key=lambda interval: interval.start)
        for earlier, later in pairwise(ordered):
            if later.start < earlier.end:
                raise ValueError(
                    f"intervals overlap: {earlier.start}-{earlier.end} and "
                    f"{later.start}-{later.end}"
                )
        return ordered

    @model_validator(mode="after")
    def _opens_sometime(self) -> Self:
        if not any(getattr(self, day) for day in WEEKDAYS):
            raise ValueError("a calendar must be open at some time of the week")
        return self

    def by_weekday(self) -> dict[int, tuple[tuple[dt.time, dt.time | None], ...]]:
        """Weekday (0 = Monday) to its intervals, as ``BusinessCalendar`` takes them."""
        return {
            number: tuple(interval.as_times() for interval in getattr(self, day))
            for number, day in enumerate(WEEKDAYS)
        }


class CalendarCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: CalendarName
    timezone: TimeZoneName
    hours: WeeklyHours
    description: Description | None = None


class CalendarUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: CalendarName | None = None
    timezone: TimeZoneName | None = None
    hours: WeeklyHours | None = None
    description: Description | None = Field(default=None, description="null clears it.")

    _not_null = field_validator("name", "timezone", "hours")(reject_null)


class CalendarRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    timezone: str
    hours: WeeklyHours
    description: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int


class HolidayWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: dt.date = Field(examples=["2026-06-05"])
    name: HolidayName


class HolidayRead(BaseModel):
    """A local date on which the calendar's desk is closed all day."""

    model_config = ConfigDict(from_attributes=True)

    date: dt.date
    name: str


class HolidayList(BaseModel):
    """A calendar's whole list of holidays, one per date."""

    model_config = ConfigDict(extra="forbid")

    holidays: list[HolidayWrite] = Field(max_length=1000)


class HolidayImport(BaseModel):
    """Public holidays of a country (and optionally one of its subdivisions) to add."""

    model_config = ConfigDict(extra="forbid")

    country: str = Field(pattern=r"^[A-Z]{2}$", examples=["DK"], description="ISO 3166-1 alpha-2.")
    years: list[Annotated[int, Field(ge=1970, le=2100)]] = Field(
        min_length=1, max_length=10, examples=[[2026, 2027]]
    )
    subdivision: str | None = Field(
        default=None, max_length=10, examples=["AB"], description="ISO 3166-2 code, e.g. a county."
    )
