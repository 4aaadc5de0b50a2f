"""Typed domain events, emitted by services in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.events.models import Event


async def emit(
    session: AsyncSession, type_: str, entity: str, entity_id: int | None, data: dict[str, Any]
) -> Event:
    event = Event(type=type_, entity=entity, entity_id=entity_id, data=data)
    session.add(event)
    await session.flush()
    return event
