"""Webhooks: subscriptions (admin only), and the worker's steps: fan events out into
deliveries, attempt the due one of an endpoint, record what came of it (see ``worker.py``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
import structlog
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal
from app.core.config import Settings
from app.core.crypto import decrypt, encrypt
from app.core.errors import Conflict, Invalid, NotFound, check_version
from app.core.pagination import SortKey, next_cursor
from app.events import service as events
from app.events.models import Event
from app.events.schemas import WebhookDisabled
from app.outbound.service import retry_delay
from app.webhooks import repository, sending
from app.webhooks.models import Webhook, WebhookDelivery, WebhookDeliveryStatus
from app.webhooks.schemas import WebhookCreate, WebhookRead, WebhookUpdate
from app.webhooks.targets import TargetPolicy, Unresolvable, UnsafeTarget, check_target

log = structlog.get_logger(__name__)

ENTITY = "webhook"
_BY_ID = SortKey(Webhook.id, Webhook.id, descending=False)
_NEWEST_FIRST = SortKey(WebhookDelivery.id, WebhookDelivery.id, descending=True)


@dataclass(frozen=True)
class WebhookConfig:
    secret_key: str
    policy: TargetPolicy = field(default_factory=TargetPolicy)
    timeout_seconds: float = 10
    retry_seconds: float = 30
    disable_after: timedelta = timedelta(days=3)
    secret_overlap: timedelta = timedelta(hours=24)

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookConfig:
        return cls(
            secret_key=settings.resolved_secret_key(),
            policy=TargetPolicy.from_list(
                settings.webhook_allow_private, settings.webhook_allowed_targets
            ),
            timeout_seconds=settings.webhook_timeout_seconds,
            retry_seconds=settings.webhook_retry_seconds,
            disable_after=timedelta(hours=settings.webhook_disable_after_hours),
            secret_overlap=timedelta(hours=settings.webhook_secret_overlap_hours),
        )


def _snapshot(webhook: Webhook) -> audit.Snapshot:
    return audit.snapshot(WebhookRead.model_validate(webhook))


async def _check_url(url: str, policy: TargetPolicy) -> None:
    """A host that does not resolve yet is accepted: each delivery checks it again."""
    try:
        await check_target(url, policy)
    except Unresolvable:
        return
    except UnsafeTarget as exc:
        raise Invalid(str(exc), field="body.url") from exc


# --- subscriptions -----------------------------------------------------------------------------


async def get_webhook(session: AsyncSession, actor: Principal, webhook_id: int) -> Webhook:
    actor.require(AgentRole.admin)
    webhook = await repository.get(session, webhook_id)
    if webhook is None:
        raise NotFound(f"Webhook {webhook_id} does not exist.")
    return webhook


async def list_webhooks(
    session: AsyncSession, actor: Principal, *, cursor: str | None, limit: int
) -> tuple[list[Webhook], str | None]:
    actor.require(AgentRole.admin)
    rows = await repository.list_webhooks(session, key=_BY_ID, cursor=cursor, limit=limit)
    return next_cursor(rows, _BY_ID, limit)


async def create_webhook(
    session: AsyncSession, actor: Principal, data: WebhookCreate, config: WebhookConfig
) -> tuple[Webhook, str]:
    """The new webhook and its signing secret (shown this once)."""
    actor.require(AgentRole.admin)
    await _check_url(data.url, config.policy)
    secret = sending.new_secret()
    webhook = Webhook(
        url=data.url,
        event_types=data.event_types,
        active=data.active,
        description=data.description,
        secret_encrypted=encrypt(config.secret_key, secret),
    )
    session.add(webhook)
    await session.flush()
    await audit.record(
        session, actor, "webhook.created", ENTITY, webhook.id, after=_snapshot(webhook)
    )
    return webhook, secret


async def update_webhook(
    session: AsyncSession,
    actor: Principal,
    webhook_id: int,
    changes: WebhookUpdate,
    expected_version: int | None,
    config: WebhookConfig,
    *,
    now: datetime,
) -> Webhook:
    """Switching a webhook on again sends events from then on, and retries its pending
    deliveries at once."""
    webhook = await get_webhook(session, actor, webhook_id)
    check_version(webhook.version, expected_version)
    values = changes.model_dump(exclude_unset=True)
    if "url" in values:
        await _check_url(values["url"], config.policy)
    before = _snapshot(webhook)
    if values.get("active") and not webhook.active:
        # Compared with events' ``occurred_at``, so taken from the same clock: the database's.
        webhook.subscribed_since = func.now()
        webhook.failing_since = None
        webhook.disabled_reason = None
        await repository.retry_pending_now(session, webhook.id, now)
    for name, value in values.items():
        setattr(webhook, name, value)
    await session.flush()
    await audit.record(
        session,
        actor,
        "webhook.updated",
        ENTITY,
        webhook.id,
        before=before,
        after=_snapshot(webhook),
    )
    return webhook


async def delete_webhook(
    session: AsyncSession, actor: Principal, webhook_id: int, expected_version: int | None
) -> None:
    webhook = await get_webhook(session, actor, webhook_id)
    check_version(webhook.version, expected_version)
    before = _snapshot(webhook)
    await session.delete(webhook)
    await session.flush()
    await audit.record(session, actor, "webhook.deleted", ENTITY, webhook_id, before=before)


async def rotate_secret(
    session: AsyncSession,
    actor: Principal,
    webhook_id: int,
    config: WebhookConfig,
    *,
    now: datetime,
) -> tuple[Webhook, str]:
    """A new secret; the current one keeps signing too for ``config.secret_overlap``, so the
    consumer can switch without losing a delivery. Refused (409) while the secret before is
    still in its overlap: dropping it early would break a consumer not yet switched."""
    webhook = await get_webhook(session, actor, webhook_id)
    expires = webhook.previous_secret_expires_at
    if webhook.previous_secret_encrypted is not None and expires is not None and expires > now:
        raise Conflict(
            f"The secret before the last rotation still signs until {expires.isoformat()}; "
            "rotate again after that.",
            previous_secret_expires_at=expires.isoformat(),
        )
    secret = sending.new_secret()
    webhook.previous_secret_encrypted = webhook.secret_encrypted
    webhook.previous_secret_expires_at = now + config.secret_overlap
    webhook.secret_encrypted = encrypt(config.secret_key, secret)
    await session.flush()
    await audit.record(
        session,
        actor,
        "webhook.secret_rotated",
        ENTITY,
        webhook.id,
        after={"previous_secret_expires_at": webhook.previous_secret_expires_at.isoformat()},
    )
    return webhook, secret


def signing_secrets(webhook: Webhook, now: datetime, config: WebhookConfig) -> list[str]:
    """The current secret, and the one before while its overlap lasts."""
    current = [decrypt(config.secret_key, webhook.secret_encrypted)]
    expires = webhook.previous_secret_expires_at
    if webhook.previous_secret_encrypted is None or expires is None or expires <= now:
        return current
    return [*current, decrypt(config.secret_key, webhook.previous_secret_encrypted)]


# --- the delivery log, redelivery and ping ------------------------------------------------------


async def list_deliveries(
    session: AsyncSession, actor: Principal, webhook_id: int, *, cursor: str | None, limit: int
) -> tuple[list[WebhookDelivery], str | None]:
    webhook = await get_webhook(session, actor, webhook_id)
    rows = await repository.list_deliveries(
        session, webhook.id, key=_NEWEST_FIRST, cursor=cursor, limit=limit
    )
    return next_cursor(rows, _NEWEST_FIRST, limit)


async def redeliver(
    session: AsyncSession, actor: Principal, webhook_id: int, delivery_id: int, *, now: datetime
) -> WebhookDelivery:
    """Send the event again, now (in its place in the endpoint's order: deliveries of
    earlier events still pending go first). It keeps its ``webhook-id``."""
    webhook = await get_webhook(session, actor, webhook_id)
    delivery = await repository.get_delivery(session, webhook.id, delivery_id)
    if delivery is None:
        raise NotFound(f"Webhook {webhook_id} has no delivery {delivery_id}.")
    delivery.status = WebhookDeliveryStatus.pending
    delivery.next_attempt_at = now
    await session.flush()
    await audit.record(
        session,
        actor,
        "webhook.redelivered",
        ENTITY,
        webhook.id,
        after={"delivery_id": delivery_id},
    )
    return delivery


async def ping(
    session: AsyncSession,
    actor: Principal,
    webhook_id: int,
    config: WebhookConfig,
    *,
    now: datetime,
) -> sending.Attempt:
    """Post a ``webhook.ping`` event to this endpoint only, now, and say how it went. It is
    not stored as an event, so other webhooks do not get it."""
    webhook = await get_webhook(session, actor, webhook_id)
    body = sending.payload(
        None, "webhook.ping", now, ENTITY, webhook.id, {"webhook_id": webhook.id}
    )
    headers = sending.signed_headers(
        f"ping_{uuid.uuid4().hex}", now, body, signing_secrets(webhook, now, config)
    )
    async with sending.http_client(config.timeout_seconds, config.policy) as client:
        return await sending.post(client, webhook.url, headers, body)


# --- the worker's steps ------------------------------------------------------------------------


FAN_OUT_BATCH = 1000


async def fan_out(session: AsyncSession, now: datetime) -> int | None:
    """Create the deliveries of the events settled since the last fan-out (in the event feed's
    order, so none is skipped however late its transaction commits) for the active webhooks
    subscribed to them; the number created, or None while another worker fans out."""
    position = await repository.lock_fan_out_position(session)
    if position is None:
        return None
    found, next_position = await events.settled_since(session, position, FAN_OUT_BATCH)
    if not found:
        return 0
    created = await repository.create_deliveries(session, [e.id for e in found], now)
    if next_position != position:
        await repository.save_fan_out_position(session, next_position)
    return created


def message_id(delivery: WebhookDelivery) -> str:
    """The ``webhook-id``: the same for every attempt of one event to one webhook."""
    return f"evt_{delivery.event_id}_wh_{delivery.webhook_id}"


@dataclass(frozen=True)
class DueDelivery:
    webhook: Webhook
    delivery: WebhookDelivery
    event: Event


async def claim_due(session: AsyncSession, now: datetime) -> DueDelivery | None:
    """The next delivery to attempt, with its endpoint locked until the transaction ends; None
    when no endpoint has a due delivery that another worker is not attempting."""
    claimed = await repository.claim_due(session, now)
    if claimed is None:
        return None
    webhook, delivery_id = claimed
    delivery = await repository.lock_delivery(session, delivery_id)
    # Another worker may have finished it between the query's snapshot and the lock.
    if (
        delivery is None
        or delivery.status is not WebhookDeliveryStatus.pending
        or delivery.next_attempt_at > now
    ):
        return None
    event = await session.get(Event, delivery.event_id)
    assert event is not None  # the foreign key's cascade removes deliveries with their event
    return DueDelivery(webhook, delivery, event)


async def attempt(
    client: httpx.AsyncClient, due: DueDelivery, now: datetime, config: WebhookConfig
) -> sending.Attempt:
    """Sign the event for the endpoint and post it (``client`` from ``sending.http_client``)."""
    event = due.event
    body = sending.payload(
        event.id, event.type, event.occurred_at, event.entity, event.entity_id, event.data
    )
    headers = sending.signed_headers(
        message_id(due.delivery), now, body, signing_secrets(due.webhook, now, config)
    )
    return await sending.post(client, due.webhook.url, headers, body)


async def record_attempt(
    session: AsyncSession,
    due: DueDelivery,
    outcome: sending.Attempt,
    now: datetime,
    config: WebhookConfig,
) -> None:
    """A delivered attempt ends the endpoint's failure streak; a failed one is retried later,
    and a streak longer than ``config.disable_after`` switches the webhook off."""
    webhook, delivery = due.webhook, due.delivery
    delivery.attempts += 1
    delivery.last_status_code = outcome.status_code
    delivery.last_latency_ms = outcome.latency_ms
    delivery.last_error = outcome.error
    if outcome.delivered:
        delivery.status = WebhookDeliveryStatus.delivered
        delivery.delivered_at = now
        if webhook.failing_since is not None:
            await repository.set_failing_since(session, webhook.id, None)
        return
    delivery.next_attempt_at = now + retry_delay(delivery.attempts, config.retry_seconds)
    log.warning(
        "webhook_retry_later",
        webhook_id=webhook.id,
        delivery_id=delivery.id,
        attempts=delivery.attempts,
        error=outcome.error,
    )
    if webhook.failing_since is None:
        await repository.set_failing_since(session, webhook.id, now)
    elif now - webhook.failing_since >= config.disable_after:
        await _disable(session, webhook, now)


async def _disable(session: AsyncSession, webhook: Webhook, now: datetime) -> None:
    assert webhook.failing_since is not None
    reason = (
        f"Every delivery failed from {webhook.failing_since.isoformat()} to {now.isoformat()}; "
        "switched off. Fix the endpoint, then set `active` to true."
    )
    webhook.active = False
    webhook.disabled_reason = reason
    await repository.fail_pending(session, webhook.id, reason)
    await session.flush()
    log.warning("webhook_disabled", webhook_id=webhook.id, url=webhook.url)
    await events.emit(
        session,
        WebhookDisabled(
            webhook_id=webhook.id,
            url=webhook.url,
            failing_since=webhook.failing_since,
            reason=reason,
        ),
    )
