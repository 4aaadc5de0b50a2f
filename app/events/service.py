"""Typed domain events, emitted by services in the caller's transaction, and the feed that
serves them in order.

Why the feed orders by transaction, not by id: ids come from a sequence when a row is written,
but transactions commit in any order. If transaction A writes event 7 and, before A commits,
transaction B writes event 8 and commits, a consumer asking for "ids above the last I saw"
gets 8, remembers 8, and never sees 7 once A commits. So each event keeps the id of the
transaction that wrote it (``txid``, from ``pg_current_xact_id()``), and the feed serves only
events of transactions older than every transaction still running (``txid`` below
``pg_snapshot_xmin(pg_current_snapshot())``): those transactions have all ended, so nothing
can be added behind what was served. Served in ``(txid, id)`` order with a cursor holding the
last ``(txid, id)``, the feed never skips or repeats an event. The price is a delay: an event
appears once every transaction that started before its own has ended, so a long-running
transaction holds the feed back until it finishes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.auth.schemas import Principal
from app.core.errors import Invalid
from app.events import repository
from app.events.models import Event
from app.events.schemas import EVENT_TYPES, EventData, EventTypeRead

_START = (0, 0)


async def emit(session: AsyncSession, event: EventData) -> Event:
    row = Event(**_row(event))
    session.add(row)
    await session.flush()
    return row


async def emit_many(session: AsyncSession, events: Sequence[EventData]) -> None:
    """Emit many events with one INSERT (a change of many tickets at once): a round trip
    per event would make one bulk change thousands of them."""
    if events:
        await session.execute(insert(Event), [_row(event) for event in events])


def _row(event: EventData) -> dict[str, object]:
    return {
        "type": event.type_name,
        "entity": event.entity,
        "entity_id": event.entity_id,
        "data": event.model_dump(mode="json", by_alias=True),
    }


def encode_position(position: tuple[int, int]) -> str:
    """A ``(txid, id)`` position as an opaque cursor; the incremental export uses it too."""
    raw = json.dumps(list(position), separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_position(cursor: str, *, field: str) -> tuple[int, int]:
    """The position of a cursor made by ``encode_position``; ``field`` names the parameter
    that carried it in the error."""
    try:
        txid, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise _bad_cursor(field) from exc
    if not all(isinstance(value, int) and value >= 0 for value in (txid, row_id)):
        raise _bad_cursor(field)
    return txid, row_id


def _bad_cursor(field: str) -> Invalid:
    return Invalid(
        "The cursor is not valid: pass back `next_cursor` from the previous answer unchanged.",
        field=field,
    )


async def feed(
    session: AsyncSession,
    actor: Principal,
    *,
    after: str | None,
    types: Sequence[str],
    limit: int,
) -> tuple[list[Event], str]:
    """Events after the cursor, oldest first, and the cursor to ask with next time (the same
    one when nothing is new): admin only."""
    actor.require(AgentRole.admin)
    unknown = sorted(set(types) - EVENT_TYPES.keys())
    if unknown:
        raise Invalid(f"Unknown event type(s): {', '.join(unknown)}.", field="query.type")
    position = decode_position(after, field="query.after") if after else _START
    rows = await repository.settled_after(session, *position, types, limit)
    if rows:
        position = (rows[-1].txid, rows[-1].id)
    return rows, encode_position(position)


async def settled_since(
    session: AsyncSession, position: tuple[int, int], limit: int
) -> tuple[list[Event], tuple[int, int]]:
    """For webhook fan-out, which keeps its own position (no permission check): the events
    after ``position`` whose transactions have ended, plus those of the caller's own
    transaction, in the feed's order; and the position to continue from. The position moves
    only over events settled for everyone, so the caller's own events are seen again next
    time (fan-out is idempotent) and nothing of a transaction still running is passed over."""
    rows = await repository.settled_or_own_after(session, *position, limit)
    settled = [event for event, done in rows if done]
    if settled:
        position = (settled[-1].txid, settled[-1].id)
    return [event for event, _ in rows], position


def event_types() -> list[EventTypeRead]:
    return [
        EventTypeRead(
            type=name,
            version=model.version(),
            description=model.__doc__ or "",
            json_schema=model.model_json_schema(by_alias=True),
        )
        for name, model in EVENT_TYPES.items()
    ]
