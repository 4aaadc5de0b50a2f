"""Delivery to a real endpoint on loopback: signed as the Standard Webhooks specification
says, retried through errors and timeouts, in order per endpoint, switched off after failing
for too long; with a clock the test moves."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from app.agents.models import AgentRole
from app.auth.schemas import Principal
from app.core.clock import utcnow
from app.core.errors import Conflict
from app.events.models import Event
from app.webhooks import sending, service, targets
from app.webhooks.models import Webhook, WebhookDelivery, WebhookDeliveryStatus
from app.webhooks.schemas import WebhookCreate, WebhookUpdate
from app.webhooks.service import WebhookConfig
from app.webhooks.targets import TargetPolicy
from app.webhooks.worker import WebhookWorker
from tests.webhooks.receiver import Receiver

ADMIN = Principal(agent_id=None, label="test", role=AgentRole.admin)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Hooks:
    session: AsyncSession
    worker: WebhookWorker
    clock: Clock
    receiver: Receiver
    config: WebhookConfig

    async def subscribe(self, types: list[str] | None = None) -> tuple[Webhook, str]:
        data = WebhookCreate(url=self.receiver.url, event_types=types or ["*"])
        return await service.create_webhook(self.session, ADMIN, data, self.config)

    async def event(self, type_: str = "ticket.created", **data: object) -> int:
        event = Event(type=type_, entity="ticket", entity_id=1, data=data)
        self.session.add(event)
        await self.session.flush()
        return event.id

    async def deliveries(self, webhook_id: int) -> list[WebhookDelivery]:
        statement = (
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.event_id)
            .execution_options(populate_existing=True)
        )
        return list(await self.session.scalars(statement))


@pytest.fixture
async def hooks(
    session: AsyncSession, connection: AsyncConnection, receiver: Receiver, config: WebhookConfig
) -> Hooks:
    maker = async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    clock = Clock(utcnow())
    return Hooks(session, WebhookWorker(maker, config, clock=clock), clock, receiver, config)


async def test_a_delivery_is_signed_and_verifies_with_the_library(hooks: Hooks) -> None:
    webhook, secret = await hooks.subscribe(["ticket.created"])
    event_id = await hooks.event(subject="Faktura")
    await hooks.event("customer.created")  # not subscribed

    assert await hooks.worker.deliver_due() == 1

    [request] = hooks.receiver.received
    payload = Verifier(secret).verify(request.body, request.headers)
    assert payload["id"] == event_id
    assert payload["type"] == "ticket.created"
    assert payload["entity"] == "ticket"
    assert payload["data"] == {"subject": "Faktura"}
    assert request.headers["webhook-id"] == f"evt_{event_id}_wh_{webhook.id}"
    with pytest.raises(WebhookVerificationError):
        Verifier(sending.new_secret()).verify(request.body, request.headers)
    [delivery] = await hooks.deliveries(webhook.id)
    assert delivery.status is WebhookDeliveryStatus.delivered
    assert delivery.last_status_code == 200
    assert delivery.attempts == 1


async def test_errors_and_timeouts_are_retried_until_delivered_once(hooks: Hooks) -> None:
    webhook, _ = await hooks.subscribe()
    await hooks.event()
    hooks.receiver.answers = [500, None, 503]

    for _ in range(3):
        assert await hooks.worker.deliver_due() == 1
        [delivery] = await hooks.deliveries(webhook.id)
        assert delivery.status is WebhookDeliveryStatus.pending
        assert await hooks.worker.deliver_due() == 0  # not due yet
        hooks.clock.now = delivery.next_attempt_at
    [delivery] = await hooks.deliveries(webhook.id)
    assert delivery.attempts == 3
    assert delivery.last_error == "the endpoint answered HTTP 503"

    assert await hooks.worker.deliver_due() == 1
    assert await hooks.worker.deliver_due() == 0
    [delivery] = await hooks.deliveries(webhook.id)
    assert delivery.status is WebhookDeliveryStatus.delivered
    assert delivery.attempts == 4
    ids = {r.headers["webhook-id"] for r in hooks.receiver.received}
    assert len(hooks.receiver.received) == 4
    assert len(ids) == 1


async def test_a_failing_event_holds_back_the_later_ones(hooks: Hooks) -> None:
    await hooks.subscribe()
    first = await hooks.event(n=1)
    second = await hooks.event(n=2)
    hooks.receiver.answers = [500]

    await hooks.worker.deliver_due()
    assert [r.json["id"] for r in hooks.receiver.received] == [first]

    hooks.clock.advance(hours=7)
    await hooks.worker.deliver_due()
    assert [r.json["id"] for r in hooks.receiver.received] == [first, first, second]


async def test_an_endpoint_failing_for_days_is_switched_off_with_an_event(hooks: Hooks) -> None:
    webhook, _ = await hooks.subscribe(["ticket.created"])
    await hooks.event()
    await hooks.event()
    hooks.receiver.answers = [500] * 100
    await hooks.worker.deliver_due()
    for _ in range(20):
        hooks.clock.advance(hours=6, minutes=30)
        await hooks.worker.deliver_due()

    await hooks.session.refresh(webhook)
    assert webhook.active is False
    assert webhook.disabled_reason is not None
    statuses = [d.status for d in await hooks.deliveries(webhook.id)]
    assert statuses == [WebhookDeliveryStatus.failed] * 2
    [disabled] = await hooks.session.scalars(
        select(Event).where(Event.type == "webhook.disabled", Event.entity_id == webhook.id)
    )
    assert disabled.data["url"] == webhook.url
    received = len(hooks.receiver.received)
    assert received <= 15  # about 3 days of backoff, and nothing after
    hooks.clock.advance(days=1)
    assert await hooks.worker.deliver_due() == 0


async def test_redelivery_sends_the_event_again_with_the_same_id(hooks: Hooks) -> None:
    webhook, _ = await hooks.subscribe()
    await hooks.event()
    await hooks.worker.deliver_due()
    [delivery] = await hooks.deliveries(webhook.id)

    await service.redeliver(hooks.session, ADMIN, webhook.id, delivery.id, now=hooks.clock.now)
    hooks.clock.advance(seconds=1)
    await hooks.worker.deliver_due()

    first, again = hooks.receiver.received
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    [delivery] = await hooks.deliveries(webhook.id)
    assert delivery.status is WebhookDeliveryStatus.delivered
    assert delivery.attempts == 2


async def test_after_rotation_both_secrets_sign_until_the_overlap_ends(hooks: Hooks) -> None:
    webhook, old = await hooks.subscribe()
    _, new = await service.rotate_secret(
        hooks.session, ADMIN, webhook.id, hooks.config, now=hooks.clock.now
    )
    await hooks.event()
    await hooks.worker.deliver_due()
    [request] = hooks.receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Verifier(old).verify(request.body, request.headers)
    Verifier(new).verify(request.body, request.headers)

    hooks.clock.advance(hours=25)
    await hooks.event()
    await hooks.worker.deliver_due()
    later = hooks.receiver.received[1]
    message_id, signature = later.headers["webhook-id"], later.headers["webhook-signature"]
    assert signature == Verifier(new).sign(message_id, hooks.clock.now, later.body.decode())


async def test_deliveries_are_refused_to_private_addresses_unless_allowed(hooks: Hooks) -> None:
    webhook, _ = await hooks.subscribe()
    await hooks.event()
    hooks.worker.config = replace(
        hooks.config, policy=replace(hooks.config.policy, allow_private=False)
    )

    await hooks.worker.deliver_due()

    assert hooks.receiver.received == []
    [delivery] = await hooks.deliveries(webhook.id)
    assert delivery.status is WebhookDeliveryStatus.pending
    assert "not a public address" in (delivery.last_error or "")


def _resolving(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    """The addresses names resolve to, one answer per lookup (the last one repeats); returns
    the names looked up."""
    looked_up: list[str] = []

    async def resolve(host: str, port: int) -> list[targets.IpAddress]:
        looked_up.append(host)
        return [ipaddress.ip_address(answers[min(len(looked_up), len(answers)) - 1])]

    monkeypatch.setattr(targets, "_resolve", resolve)
    return looked_up


def _at(hooks: Hooks, host: str) -> str:
    return hooks.receiver.url.replace("127.0.0.1", host)


def _policy(hooks: Hooks, allowed: list[str]) -> None:
    hooks.worker.config = replace(hooks.config, policy=TargetPolicy.from_list(False, allowed))


async def _subscribe_at(hooks: Hooks, url: str) -> Webhook:
    data = WebhookCreate(url=url, event_types=["*"])
    webhook, _ = await service.create_webhook(hooks.session, ADMIN, data, hooks.config)
    return webhook


async def test_the_connection_goes_to_the_address_that_was_checked(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No one else knows hooks.test: only a connection to the checked address reaches the
    # receiver.
    looked_up = _resolving(monkeypatch, "127.0.0.1")
    _policy(hooks, ["127.0.0.1/32"])
    webhook = await _subscribe_at(hooks, _at(hooks, "hooks.test"))
    await hooks.event()

    await hooks.worker.deliver_due()

    [request] = hooks.receiver.received
    assert request.headers["host"] == _at(hooks, "hooks.test").split("/")[2]
    assert looked_up == ["hooks.test"]
    [delivery] = await hooks.deliveries(webhook.id)
    assert delivery.status is WebhookDeliveryStatus.delivered


async def test_a_name_re_pointed_after_the_check_is_not_called(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first answer is allowed and unreachable, the next one is the receiver: the
    # endpoint must be posted to at the first, never looked up again.
    _resolving(monkeypatch, "127.0.0.2", "127.0.0.1")
    _policy(hooks, ["127.0.0.2/32"])
    webhook = await _subscribe_at(hooks, _at(hooks, "localhost"))
    await hooks.event()

    await hooks.worker.deliver_due()

    assert hooks.receiver.received == []
    [delivery] = await hooks.deliveries(webhook.id)
    assert delivery.status is WebhookDeliveryStatus.pending
    assert "could not reach the endpoint" in (delivery.last_error or "")


@pytest.mark.parametrize(
    ("allowed", "host", "delivered"),
    [
        (["127.0.0.0/8"], "127.0.0.1", True),
        (["::1/128", "127.0.0.1"], "127.0.0.1", True),
        (["LocalHost."], "localhost", True),
        (["10.0.0.0/8", "hooks.example.com", "127.0.0.2"], "127.0.0.1", False),
        ([], "localhost", False),
    ],
)
async def test_the_allow_list_admits_its_hosts_and_networks_only(
    hooks: Hooks, allowed: list[str], host: str, delivered: bool
) -> None:
    _policy(hooks, allowed)
    webhook = await _subscribe_at(hooks, _at(hooks, host))
    await hooks.event()

    await hooks.worker.deliver_due()

    assert len(hooks.receiver.received) == int(delivered)
    [delivery] = await hooks.deliveries(webhook.id)
    if not delivered:
        assert "not a public address" in (delivery.last_error or "")


async def test_a_secret_that_cannot_be_decrypted_is_a_failed_attempt(hooks: Hooks) -> None:
    webhook, _ = await hooks.subscribe()
    await hooks.event()
    hooks.worker.config = replace(hooks.config, secret_key="another-key-" + "k" * 40)

    assert await hooks.worker.deliver_due() == 1

    assert hooks.receiver.received == []
    [delivery] = await hooks.deliveries(webhook.id)
    assert delivery.status is WebhookDeliveryStatus.pending
    assert delivery.attempts == 1
    assert (delivery.last_error or "").startswith("could not be sent: SecretKeyChanged")
    hooks.worker.config = hooks.config
    hooks.clock.now = delivery.next_attempt_at
    assert await hooks.worker.deliver_due() == 1
    assert len(hooks.receiver.received) == 1


async def test_a_second_rotation_waits_for_the_overlap_to_end(hooks: Hooks) -> None:
    webhook, first = await hooks.subscribe()
    await service.rotate_secret(hooks.session, ADMIN, webhook.id, hooks.config, now=hooks.clock.now)
    hooks.clock.advance(hours=23)
    with pytest.raises(Conflict):
        await service.rotate_secret(
            hooks.session, ADMIN, webhook.id, hooks.config, now=hooks.clock.now
        )

    hooks.clock.advance(hours=1)
    _, third = await service.rotate_secret(
        hooks.session, ADMIN, webhook.id, hooks.config, now=hooks.clock.now
    )
    await hooks.event()
    await hooks.worker.deliver_due()
    [request] = hooks.receiver.received
    message_id, body = request.headers["webhook-id"], request.body.decode()
    signatures = request.headers["webhook-signature"].split(" ")
    assert Verifier(third).sign(message_id, hooks.clock.now, body) in signatures
    assert Verifier(first).sign(message_id, hooks.clock.now, body) not in signatures
    assert len(signatures) == 2  # the third and the second, in its overlap


async def test_switching_a_webhook_on_again_retries_its_pending_delivery_at_once(
    hooks: Hooks,
) -> None:
    webhook, _ = await hooks.subscribe()
    await hooks.event()
    hooks.receiver.answers = [500]
    await hooks.worker.deliver_due()
    hooks.clock.advance(minutes=1, seconds=-1)  # the retry is due in a minute
    for active in (False, True):
        changes = WebhookUpdate(active=active)
        await service.update_webhook(
            hooks.session, ADMIN, webhook.id, changes, None, hooks.config, now=hooks.clock.now
        )

    assert await hooks.worker.deliver_due() == 1

    [delivery] = await hooks.deliveries(webhook.id)
    assert delivery.status is WebhookDeliveryStatus.delivered
    assert delivery.attempts == 2
