"""The webhooks API: admin only, the secret shown once, If-Match, private targets refused,
the delivery log, ping."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from standardwebhooks import Webhook as Verifier

from app.api.deps import get_settings_dep
from app.core.clock import utcnow
from app.core.config import Settings
from app.events.models import Event
from app.webhooks.service import WebhookConfig
from app.webhooks.worker import WebhookWorker
from tests.conftest import Caller, MakeAgent
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_delivery import Clock

API = "/api/v1/webhooks"


async def test_crud_with_the_secret_shown_once_and_if_match(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    created = await client.post(
        API,
        headers=admin.headers,
        json={"url": "https://hooks.example.com/t", "event_types": ["ticket.created"]},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert created.headers["location"] == f"{API}/{body['id']}"
    url = f"{API}/{body['id']}"

    read = await client.get(url, headers=admin.headers)
    assert "secret" not in read.json()
    etag = read.headers["etag"]
    listed = await client.get(API, headers=admin.headers)
    assert [w["id"] for w in listed.json()["items"]] == [body["id"]]

    changed = await client.patch(
        url, headers={**admin.headers, "If-Match": etag}, json={"active": False}
    )
    assert changed.status_code == 200
    assert changed.json()["active"] is False
    stale = await client.patch(
        url, headers={**admin.headers, "If-Match": etag}, json={"description": "x"}
    )
    assert stale.status_code == 412

    rotated = await client.post(f"{url}/rotate-secret", headers=admin.headers)
    assert rotated.json()["secret"] not in (body["secret"], None)
    assert rotated.json()["previous_secret_expires_at"] is not None

    deleted = await client.delete(url, headers={**admin.headers, "If-Match": etag})
    assert deleted.status_code == 412
    deleted = await client.delete(url, headers=admin.headers)
    assert deleted.status_code == 204
    assert (await client.get(url, headers=admin.headers)).status_code == 404


@pytest.mark.parametrize("role", ["supervisor", "agent", "external"])
async def test_only_admins(client: httpx.AsyncClient, make_agent: MakeAgent, role: str) -> None:
    caller = await make_agent(role)
    assert (await client.get(API, headers=caller.headers)).status_code == 403


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://localhost/x",
        "ftp://hooks.example.com/x",
    ],
)
async def test_private_and_non_http_targets_are_refused(
    client: httpx.AsyncClient, admin: Caller, url: str
) -> None:
    response = await client.post(
        API, headers=admin.headers, json={"url": url, "event_types": ["*"]}
    )
    assert response.status_code == 422, response.text


async def test_ping_posts_a_signed_ping_to_the_endpoint(
    client: httpx.AsyncClient, admin: Caller, receiver: Receiver, private_allowed: None
) -> None:
    created = await client.post(
        API, headers=admin.headers, json={"url": receiver.url, "event_types": ["*"]}
    )
    assert created.status_code == 201, created.text
    webhook = created.json()

    answer = await client.post(f"{API}/{webhook['id']}/ping", headers=admin.headers)

    assert answer.status_code == 200
    assert answer.json()["delivered"] is True
    assert answer.json()["status_code"] == 200
    [request] = receiver.received
    payload = Verifier(webhook["secret"]).verify(request.body, request.headers)
    assert payload["type"] == "webhook.ping"

    receiver.answers = [500]
    failed = await client.post(f"{API}/{webhook['id']}/ping", headers=admin.headers)
    assert failed.json()["delivered"] is False
    assert failed.json()["error"] == "the endpoint answered HTTP 500"
    log = await client.get(f"{API}/{webhook['id']}/deliveries", headers=admin.headers)
    assert log.json() == {"items": [], "next_cursor": None}  # pings are not events


async def test_unknown_event_types_are_refused_with_close_matches(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    created = await client.post(
        API,
        headers=admin.headers,
        json={"url": "https://hooks.example.com/t", "event_types": ["*", "ticket.creatd"]},
    )
    assert created.status_code == 422, created.text
    [error] = created.json()["errors"]
    assert error["pointer"] == "/body/event_types/1"
    assert "ticket.creatd" in error["detail"]
    assert "Did you mean ticket.created" in error["detail"]

    good = await client.post(
        API,
        headers=admin.headers,
        json={"url": "https://hooks.example.com/t", "event_types": ["ticket.created"]},
    )
    changed = await client.patch(
        f"{API}/{good.json()['id']}", headers=admin.headers, json={"event_types": ["tickets"]}
    )
    assert changed.status_code == 422
    assert changed.json()["errors"][0]["pointer"] == "/body/event_types/0"


async def test_a_second_rotation_within_the_overlap_is_a_conflict(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    created = await client.post(
        API,
        headers=admin.headers,
        json={"url": "https://hooks.example.com/t", "event_types": ["*"]},
    )
    url = f"{API}/{created.json()['id']}/rotate-secret"
    first = await client.post(url, headers=admin.headers)
    assert first.status_code == 200

    again = await client.post(url, headers=admin.headers)

    assert again.status_code == 409
    expires = datetime.fromisoformat(first.json()["previous_secret_expires_at"])
    assert datetime.fromisoformat(again.json()["previous_secret_expires_at"]) == expires


@pytest.fixture
def allowed_targets(app: FastAPI, settings: Settings) -> Iterator[None]:
    """The API with TICKETRY_WEBHOOK_ALLOWED_TARGETS=["127.0.0.1/32", "intranet.example"]."""
    allowed = settings.model_copy(
        update={"webhook_allowed_targets": ["127.0.0.1/32", "intranet.example"]}
    )
    app.dependency_overrides[get_settings_dep] = lambda: allowed
    yield None
    app.dependency_overrides.pop(get_settings_dep, None)


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("http://127.0.0.1:8080/x", 201),
        ("http://intranet.example/x", 201),
        ("http://127.0.0.2/x", 422),
        ("http://10.1.2.3/x", 422),
    ],
)
async def test_the_allowed_targets_setting_admits_its_hosts_and_networks(
    client: httpx.AsyncClient, admin: Caller, allowed_targets: None, url: str, status: int
) -> None:
    response = await client.post(
        API, headers=admin.headers, json={"url": url, "event_types": ["*"]}
    )
    assert response.status_code == status, response.text


async def test_the_delivery_log_and_redelivery_through_the_api(
    client: httpx.AsyncClient,
    admin: Caller,
    receiver: Receiver,
    private_allowed: None,
    session: AsyncSession,
    connection: AsyncConnection,
    config: WebhookConfig,
) -> None:
    created = await client.post(
        API, headers=admin.headers, json={"url": receiver.url, "event_types": ["ticket.created"]}
    )
    log_url = f"{API}/{created.json()['id']}/deliveries"
    event = Event(type="ticket.created", entity="ticket", entity_id=7, data={})
    session.add(event)
    await session.flush()
    maker = async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    clock = Clock(utcnow())
    worker = WebhookWorker(maker, config, clock=clock)
    receiver.answers = [503]

    await worker.deliver_due()

    [entry] = (await client.get(log_url, headers=admin.headers)).json()["items"]
    assert entry["event_id"] == event.id
    assert entry["status"] == "pending"
    assert entry["attempts"] == 1
    assert entry["last_status_code"] == 503
    assert entry["last_error"] == "the endpoint answered HTTP 503"
    assert isinstance(entry["last_latency_ms"], int)
    assert entry["delivered_at"] is None

    redelivered = await client.post(f"{log_url}/{entry['id']}/redeliver", headers=admin.headers)
    assert redelivered.status_code == 200
    assert redelivered.json()["status"] == "pending"
    clock.advance(seconds=1)  # the API's clock ran on meanwhile
    await worker.deliver_due()

    [entry] = (await client.get(log_url, headers=admin.headers)).json()["items"]
    assert entry["status"] == "delivered"
    assert entry["attempts"] == 2
    assert entry["last_status_code"] == 200
    assert entry["last_error"] is None
    assert entry["delivered_at"] is not None
    first, again = receiver.received
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    missing = await client.post(f"{log_url}/{entry['id'] + 1}/redeliver", headers=admin.headers)
    assert missing.status_code == 404
