from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    and_,
    any_,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import SortKey, paginate
from app.events.models import Event
from app.webhooks.models import (
    Webhook,
    WebhookDelivery,
    WebhookDeliveryStatus,
    fan_out_cursor,
)
from app.webhooks.schemas import ALL_EVENTS

_PENDING = WebhookDelivery.status == WebhookDeliveryStatus.pending


async def get(session: AsyncSession, webhook_id: int) -> Webhook | None:
    return await session.get(Webhook, webhook_id)


async def list_webhooks(
    session: AsyncSession, *, key: SortKey, cursor: str | None, limit: int
) -> list[Webhook]:
    return list(await session.scalars(paginate(select(Webhook), key, cursor, limit)))


async def get_delivery(
    session: AsyncSession, webhook_id: int, delivery_id: int
) -> WebhookDelivery | None:
    return await session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook_id)
        .with_for_update()
    )


async def list_deliveries(
    session: AsyncSession, webhook_id: int, *, key: SortKey, cursor: str | None, limit: int
) -> list[WebhookDelivery]:
    statement = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    return list(await session.scalars(paginate(statement, key, cursor, limit)))


async def lock_fan_out_position(session: AsyncSession) -> tuple[int, int] | None:
    """The (txid, event id) fanned out so far, locked for this transaction; None while another
    worker holds it."""
    await session.execute(
        insert(fan_out_cursor).values(id=1, last_txid=0, last_event_id=0).on_conflict_do_nothing()
    )
    row = (
        await session.execute(
            select(fan_out_cursor.c.last_txid, fan_out_cursor.c.last_event_id)
            .where(fan_out_cursor.c.id == 1)
            .with_for_update(skip_locked=True)
        )
    ).first()
    return (row.last_txid, row.last_event_id) if row is not None else None


async def save_fan_out_position(session: AsyncSession, position: tuple[int, int]) -> None:
    await session.execute(
        update(fan_out_cursor)
        .where(fan_out_cursor.c.id == 1)
        .values(last_txid=position[0], last_event_id=position[1])
    )


async def create_deliveries(session: AsyncSession, event_ids: list[int], now: datetime) -> int:
    """A delivery of each event for each active webhook subscribed to its type since before it
    happened, created in the events' order (the order each endpoint receives them)."""
    matches = (
        select(Webhook.id, Event.id, literal(now))
        .join(
            Event,
            and_(
                Event.id.in_(event_ids),
                Event.occurred_at >= Webhook.subscribed_since,
                or_(
                    Event.type == any_(Webhook.event_types),
                    literal(ALL_EVENTS) == any_(Webhook.event_types),
                ),
            ),
        )
        .where(Webhook.active)
        .order_by(Event.txid, Event.id, Webhook.id)
    )
    created = await session.scalars(
        insert(WebhookDelivery)
        .from_select(["webhook_id", "event_id", "next_attempt_at"], matches)
        .on_conflict_do_nothing()
        .returning(WebhookDelivery.id)
    )
    return len(created.all())


async def claim_due(session: AsyncSession, now: datetime) -> tuple[Webhook, int] | None:
    """An active webhook whose head delivery (its pending one with the lowest id: the
    fan-out creates them in the order the endpoint is to get them) is due, and that delivery's
    id. The webhook is locked for this transaction (FOR NO KEY UPDATE, so deliveries can still
    be added) and webhooks another worker holds are skipped, so one endpoint gets one delivery
    at a time, in order. A webhook whose head waits for a retry is never chosen, whatever its
    later deliveries are due: it cannot hold up the others."""
    head = (
        select(WebhookDelivery.id, WebhookDelivery.next_attempt_at)
        .where(WebhookDelivery.webhook_id == Webhook.id, _PENDING)
        .order_by(WebhookDelivery.id)
        .limit(1)
        .lateral()
    )
    statement = (
        select(Webhook, head.c.id)
        .join(head, true())
        .where(Webhook.active, head.c.next_attempt_at <= now)
        .order_by(head.c.next_attempt_at, Webhook.id)
        .limit(1)
        .with_for_update(skip_locked=True, key_share=True, of=Webhook)
    )
    row = (await session.execute(statement)).first()
    return (row[0], row[1]) if row is not None else None


async def lock_delivery(session: AsyncSession, delivery_id: int) -> WebhookDelivery | None:
    return await session.get(
        WebhookDelivery, delivery_id, with_for_update=True, populate_existing=True
    )


async def set_failing_since(session: AsyncSession, webhook_id: int, when: datetime | None) -> None:
    """Bookkeeping, not a change of the resource: the version (ETag) stays."""
    await session.execute(
        update(Webhook)
        .where(Webhook.id == webhook_id)
        .values(failing_since=when)
        .execution_options(synchronize_session=False)
    )


async def fail_pending(session: AsyncSession, webhook_id: int, reason: str) -> None:
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id, _PENDING)
        .values(
            status=WebhookDeliveryStatus.failed,
            last_error=func.coalesce(WebhookDelivery.last_error, reason),
        )
        .execution_options(synchronize_session=False)
    )


async def retry_pending_now(session: AsyncSession, webhook_id: int, now: datetime) -> None:
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id, _PENDING)
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
