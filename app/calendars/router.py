from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.api.deps import CurrentPrincipal, Cursor, DbSession, IfMatch, PageLimit, etag
from app.api.etag import created_with_etag, read_with_etag
from app.api.problems import responses
from app.calendars import service
from app.calendars.models import Calendar, CalendarHoliday
from app.calendars.schemas import (
    CalendarCreate,
    CalendarRead,
    CalendarUpdate,
    HolidayImport,
    HolidayList,
    HolidayRead,
)
from app.core.pagination import Page

router = APIRouter(prefix="/calendars", tags=["calendars"])


@router.get("", response_model=Page[CalendarRead], responses=responses(401, 403, 422))
async def list_calendars(
    session: DbSession, principal: CurrentPrincipal, limit: PageLimit, cursor: Cursor = None
) -> Page[CalendarRead]:
    """List business calendars by name (agent role or higher)."""
    rows, next_cursor = await service.list_calendars(session, principal, cursor=cursor, limit=limit)
    return Page(items=[CalendarRead.model_validate(c) for c in rows], next_cursor=next_cursor)


@router.post(
    "",
    response_model=CalendarRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 422),
)
async def create_calendar(
    session: DbSession,
    principal: CurrentPrincipal,
    body: CalendarCreate,
    request: Request,
    response: Response,
) -> CalendarRead:
    """Create a calendar: weekly opening hours in local wall-clock time of its time zone
    (admin). Holidays are set with the holidays endpoints."""
    calendar = await service.create_calendar(session, principal, body)
    return created_with_etag(request, response, CalendarRead, calendar)


@router.get("/{calendar_id}", response_model=CalendarRead, responses=responses(401, 403, 404, 422))
async def get_calendar(
    session: DbSession, principal: CurrentPrincipal, calendar_id: int, response: Response
) -> CalendarRead:
    calendar = await service.get_calendar(session, principal, calendar_id)
    return read_with_etag(response, CalendarRead, calendar)


@router.patch(
    "/{calendar_id}",
    response_model=CalendarRead,
    responses=responses(401, 403, 404, 409, 412, 422),
)
async def update_calendar(
    session: DbSession,
    principal: CurrentPrincipal,
    calendar_id: int,
    body: CalendarUpdate,
    if_match: IfMatch,
    response: Response,
) -> CalendarRead:
    """Rename a calendar, or change its time zone, hours (the whole week at once) or
    description (admin)."""
    calendar = await service.update_calendar(session, principal, calendar_id, body, if_match)
    return read_with_etag(response, CalendarRead, calendar)


@router.delete(
    "/{calendar_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 412, 422),
)
async def delete_calendar(
    session: DbSession, principal: CurrentPrincipal, calendar_id: int, if_match: IfMatch
) -> None:
    """Delete a calendar and its holidays (admin)."""
    await service.delete_calendar(session, principal, calendar_id, if_match)


def _holidays(
    response: Response, calendar: Calendar, holidays: list[CalendarHoliday]
) -> list[HolidayRead]:
    response.headers["ETag"] = etag(calendar.version)
    return [HolidayRead.model_validate(h) for h in holidays]


@router.get(
    "/{calendar_id}/holidays",
    response_model=list[HolidayRead],
    responses=responses(401, 403, 404, 422),
)
async def list_holidays(
    session: DbSession, principal: CurrentPrincipal, calendar_id: int, response: Response
) -> list[HolidayRead]:
    """The calendar's holidays by date (agent role or higher); the ETag is the calendar's,
    for the `If-Match` of a change to the list."""
    calendar, holidays = await service.list_holidays(session, principal, calendar_id)
    return _holidays(response, calendar, holidays)


@router.put(
    "/{calendar_id}/holidays",
    response_model=list[HolidayRead],
    responses=responses(401, 403, 404, 412, 422),
)
async def replace_holidays(
    session: DbSession,
    principal: CurrentPrincipal,
    calendar_id: int,
    body: HolidayList,
    if_match: IfMatch,
    response: Response,
) -> list[HolidayRead]:
    """Replace the calendar's holidays with this list (admin). The calendar's version moves;
    the answer's ETag is the new one."""
    calendar, holidays = await service.replace_holidays(
        session, principal, calendar_id, body.holidays, if_match
    )
    return _holidays(response, calendar, holidays)


@router.post(
    "/{calendar_id}/holidays/import",
    response_model=list[HolidayRead],
    responses=responses(401, 403, 404, 412, 422),
)
async def import_holidays(
    session: DbSession,
    principal: CurrentPrincipal,
    calendar_id: int,
    body: HolidayImport,
    if_match: IfMatch,
    response: Response,
) -> list[HolidayRead]:
    """Add a country's public holidays for some years, named in its language (admin). Dates
    that have a holiday already keep it; imported holidays are ordinary, editable ones.
    Returns the calendar's holidays."""
    calendar, holidays = await service.import_holidays(
        session, principal, calendar_id, body, if_match
    )
    return _holidays(response, calendar, holidays)
