"""Calendars: a desk's weekly opening hours, time zone and holidays, and the
``BusinessCalendar`` that SLA targets count in."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import holidays as public_holidays
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal
from app.calendars import repository
from app.calendars.business_time import BusinessCalendar
from app.calendars.models import Calendar, CalendarHoliday
from app.calendars.schemas import (
    CalendarCreate,
    CalendarRead,
    CalendarUpdate,
    HolidayImport,
    HolidayWrite,
    WeeklyHours,
)
from app.core.errors import Conflict, Invalid, NotFound, check_version
from app.core.pagination import SortKey, next_cursor
from app.core.uniqueness import check_free
from app.sla import repository as sla_repository

ENTITY = "calendar"
_BY_NAME = SortKey(Calendar.name, Calendar.id, descending=False)

_LOADED_KEPT = 16
_loaded: dict[tuple[int, int, datetime], BusinessCalendar] = {}
"""Business calendars by saved row. The key has the save time beside the version, because a
version written in a transaction that rolled back may be written again with other hours."""

_IMPORTED_CATEGORIES = ("public", "de_facto")
"""Which of the ``holidays`` package's categories close a desk: the public holidays, and the
days kept off by custom (Swedish Midsommarafton, Julafton, Nyårsafton)."""
_MORE_IMPORTED_CATEGORIES = {"DK": ("optional",)}
"""Denmark lists Grundlovsdag, Juleaftensdag, Nytårsaften and 1 May as optional, yet Danish
offices close on them. Other countries' optional days are mostly half days, not imported."""


def _snapshot(calendar: Calendar) -> audit.Snapshot:
    return audit.snapshot(CalendarRead.model_validate(calendar))


async def get_calendar(session: AsyncSession, actor: Principal, calendar_id: int) -> Calendar:
    actor.require(AgentRole.agent)
    calendar = await repository.get(session, calendar_id)
    if calendar is None:
        raise NotFound(f"Calendar {calendar_id} does not exist.")
    return calendar


async def list_calendars(
    session: AsyncSession, actor: Principal, *, cursor: str | None, limit: int
) -> tuple[list[Calendar], str | None]:
    actor.require(AgentRole.agent)
    rows = await repository.list_calendars(session, key=_BY_NAME, cursor=cursor, limit=limit)
    return next_cursor(rows, _BY_NAME, limit)


async def _check_name_free(session: AsyncSession, name: str, calendar_id: int | None) -> None:
    owner_id = await repository.id_by_name(session, name)
    check_free(f"The name {name!r}", owner_id=owner_id, entity=ENTITY, entity_id=calendar_id)


async def create_calendar(
    session: AsyncSession, actor: Principal, data: CalendarCreate
) -> Calendar:
    actor.require(AgentRole.admin)
    await _check_name_free(session, data.name, None)
    calendar = Calendar(
        name=data.name,
        timezone=data.timezone,
        hours=data.hours.model_dump(mode="json"),
        description=data.description,
    )
    session.add(calendar)
    await session.flush()
    await audit.record(
        session, actor, "calendar.created", ENTITY, calendar.id, after=_snapshot(calendar)
    )
    return calendar


async def update_calendar(
    session: AsyncSession,
    actor: Principal,
    calendar_id: int,
    changes: CalendarUpdate,
    expected_version: int | None,
) -> Calendar:
    actor.require(AgentRole.admin)
    calendar = await get_calendar(session, actor, calendar_id)
    check_version(calendar.version, expected_version)
    values = changes.model_dump(mode="json", exclude_unset=True)
    if "name" in values:
        await _check_name_free(session, values["name"], calendar.id)
    before = _snapshot(calendar)
    for field, value in values.items():
        setattr(calendar, field, value)
    await session.flush()
    await audit.record(
        session,
        actor,
        "calendar.updated",
        ENTITY,
        calendar.id,
        before=before,
        after=_snapshot(calendar),
    )
    return calendar


async def delete_calendar(
    session: AsyncSession, actor: Principal, calendar_id: int, expected_version: int | None
) -> None:
    """Delete the calendar and its holidays. Refused while SLA policies count in it: the
    database would silently make them count 24/7."""
    actor.require(AgentRole.admin)
    calendar = await get_calendar(session, actor, calendar_id)
    check_version(calendar.version, expected_version)
    policies = await sla_repository.policy_names_counting_in(session, calendar.id)
    if policies:
        raise Conflict(
            f"SLA policies count in calendar {calendar.id}: {', '.join(policies)}. Give them "
            "another calendar (or none) first.",
            policies=policies,
        )
    holidays = await repository.list_holidays(session, calendar.id)
    before = {**_snapshot(calendar), "holidays": _holidays_snapshot(holidays)}
    await session.delete(calendar)
    await session.flush()
    await audit.record(session, actor, "calendar.deleted", ENTITY, calendar_id, before=before)


def _holidays_snapshot(holidays: list[CalendarHoliday]) -> list[dict[str, str]]:
    return [{"date": h.date.isoformat(), "name": h.name} for h in holidays]


async def list_holidays(
    session: AsyncSession, actor: Principal, calendar_id: int
) -> tuple[Calendar, list[CalendarHoliday]]:
    """The calendar (whose version an edit of the list must name) and its holidays by date."""
    calendar = await get_calendar(session, actor, calendar_id)
    return calendar, await repository.list_holidays(session, calendar.id)


async def replace_holidays(
    session: AsyncSession,
    actor: Principal,
    calendar_id: int,
    holidays: list[HolidayWrite],
    expected_version: int | None,
) -> tuple[Calendar, list[CalendarHoliday]]:
    """Make ``holidays`` the calendar's whole list; returns the calendar (its version moves,
    so cached business calendars are renewed) and the list by date."""
    actor.require(AgentRole.admin)
    calendar = await get_calendar(session, actor, calendar_id)
    check_version(calendar.version, expected_version)
    seen: set[date] = set()
    for index, holiday in enumerate(holidays):
        if holiday.date in seen:
            raise Invalid(f"{holiday.date} is listed twice.", field=f"body.holidays.{index}.date")
        seen.add(holiday.date)
    before = _holidays_snapshot(await repository.list_holidays(session, calendar.id))
    await repository.replace_holidays(session, calendar.id, [(h.date, h.name) for h in holidays])
    return await _holidays_changed(session, actor, calendar, before)


async def import_holidays(
    session: AsyncSession,
    actor: Principal,
    calendar_id: int,
    request: HolidayImport,
    expected_version: int | None,
) -> tuple[Calendar, list[CalendarHoliday]]:
    """Add a country's holidays for the years, in its own language (Grundlovsdag,
    Midsommarafton). Dates the calendar has a holiday on already keep it as it is, so an
    admin's edits survive importing again."""
    actor.require(AgentRole.admin)
    calendar = await get_calendar(session, actor, calendar_id)
    check_version(calendar.version, expected_version)
    found = _country_holidays(request)
    before = _holidays_snapshot(await repository.list_holidays(session, calendar.id))
    await repository.add_holidays(session, calendar.id, found)
    return await _holidays_changed(session, actor, calendar, before)


def _country_holidays(request: HolidayImport) -> list[tuple[date, str]]:
    try:
        country = public_holidays.country_holidays(request.country)
    except NotImplementedError as exc:
        raise Invalid(
            f"No holidays are known for the country {request.country!r}.", field="body.country"
        ) from exc
    wanted = _IMPORTED_CATEGORIES + _MORE_IMPORTED_CATEGORIES.get(request.country, ())
    try:
        found = public_holidays.country_holidays(
            request.country,
            subdiv=request.subdivision,
            years=request.years,
            categories=[c for c in wanted if c in country.supported_categories],
            # The country's own language, whatever the server's locale says.
            language=country.default_language,
        )
    except NotImplementedError as exc:
        raise Invalid(
            f"{request.country} has no subdivision {request.subdivision!r}.",
            field="body.subdivision",
        ) from exc
    # A date with two holidays (Easter Sunday on a national day) is one closed day.
    return sorted((day, "; ".join(found.get_list(day))[:200]) for day in found)


async def _holidays_changed(
    session: AsyncSession, actor: Principal, calendar: Calendar, before: list[dict[str, str]]
) -> tuple[Calendar, list[CalendarHoliday]]:
    holidays = await repository.list_holidays(session, calendar.id)
    after = _holidays_snapshot(holidays)
    if after != before:
        # The holidays are the calendar's too: its version (the ETag, the key of loaded
        # business calendars) moves with them.
        calendar.touch()
        await session.flush()
        await audit.record(
            session,
            actor,
            "calendar.holidays_changed",
            ENTITY,
            calendar.id,
            before={"holidays": before},
            after={"holidays": after},
        )
    return calendar, holidays


async def load_calendar(session: AsyncSession, calendar_id: int | None) -> BusinessCalendar:
    """The business calendar to count SLA time in; None is 24/7 in UTC. Kept per process by
    saved row, so the scheduler reads the holidays of a calendar only when it changed."""
    if calendar_id is None:
        return BusinessCalendar.always_open()
    calendar = await repository.get(session, calendar_id)
    if calendar is None:
        raise NotFound(f"Calendar {calendar_id} does not exist.")
    key = (calendar.id, calendar.version, calendar.updated_at)
    if key not in _loaded:
        holidays = await repository.holiday_dates(session, calendar.id)
        if len(_loaded) >= _LOADED_KEPT:
            del _loaded[next(iter(_loaded))]  # the oldest loaded: rarely asked for again
        _loaded[key] = BusinessCalendar(
            timezone=ZoneInfo(calendar.timezone),
            hours=WeeklyHours.model_validate(calendar.hours).by_weekday(),
            holidays=frozenset(holidays),
        )
    return _loaded[key]
