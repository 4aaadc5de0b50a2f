from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.calendars.models import Calendar, CalendarHoliday
from app.core.pagination import SortKey, paginate


async def get(session: AsyncSession, calendar_id: int) -> Calendar | None:
    return await session.get(Calendar, calendar_id)


async def id_by_name(session: AsyncSession, name: str) -> int | None:
    return await session.scalar(select(Calendar.id).where(Calendar.name == name))


async def list_calendars(
    session: AsyncSession, *, key: SortKey, cursor: str | None, limit: int
) -> list[Calendar]:
    return list(await session.scalars(paginate(select(Calendar), key, cursor, limit)))


async def list_holidays(session: AsyncSession, calendar_id: int) -> list[CalendarHoliday]:
    statement = (
        select(CalendarHoliday)
        .where(CalendarHoliday.calendar_id == calendar_id)
        .order_by(CalendarHoliday.date)
    )
    return list(await session.scalars(statement))


async def holiday_dates(session: AsyncSession, calendar_id: int) -> list[date]:
    statement = select(CalendarHoliday.date).where(CalendarHoliday.calendar_id == calendar_id)
    return list(await session.scalars(statement))


async def replace_holidays(
    session: AsyncSession, calendar_id: int, holidays: Sequence[tuple[date, str]]
) -> None:
    await session.execute(delete(CalendarHoliday).where(CalendarHoliday.calendar_id == calendar_id))
    await add_holidays(session, calendar_id, holidays)


async def add_holidays(
    session: AsyncSession, calendar_id: int, holidays: Sequence[tuple[date, str]]
) -> int:
    """Add the holidays on dates the calendar has none yet; returns how many were added."""
    if not holidays:
        return 0
    added = await session.scalars(
        insert(CalendarHoliday)
        .values([{"calendar_id": calendar_id, "date": day, "name": name} for day, name in holidays])
        .on_conflict_do_nothing(index_elements=["calendar_id", "date"])
        .returning(CalendarHoliday.id)
    )
    return len(list(added))
