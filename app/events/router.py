from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import CurrentPrincipal, DbSession, PageLimit
from app.api.problems import responses
from app.events import service
from app.events.schemas import EventPage, EventRead, EventTypeRead

router = APIRouter(prefix="/events", tags=["events"])


@router.get("", response_model=EventPage, responses=responses(401, 403, 422))
async def list_events(
    session: DbSession,
    principal: CurrentPrincipal,
    limit: PageLimit,
    after: Annotated[
        str | None,
        Query(description="`next_cursor` of the previous answer; omit to start at the first."),
    ] = None,
    type_: Annotated[
        list[str] | None, Query(alias="type", description="Only these event types (repeatable).")
    ] = None,
) -> EventPage:
    """The event feed, oldest first (admin). Poll with `next_cursor` forever: an event shows
    up once its transaction and every transaction started before it have ended, so the feed
    never skips or repeats one."""
    rows, next_cursor = await service.feed(
        session, principal, after=after, types=type_ or [], limit=limit
    )
    return EventPage(items=[EventRead.model_validate(e) for e in rows], next_cursor=next_cursor)


@router.get("/types", response_model=list[EventTypeRead], responses=responses(401, 422))
async def list_event_types(principal: CurrentPrincipal) -> list[EventTypeRead]:
    """Every event type with its version and the JSON schema of its `data`."""
    return service.event_types()
