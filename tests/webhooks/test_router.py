"""The webhooks API: admin only, the secret shown once, If-Match, private targets refused,
the delivery log, ping."""

from __future__ import annotations

import httpx
import pytest
from standardwebhooks import Webhook as Verifier

from tests.conftest import Caller, MakeAgent
from tests.webhooks.receiver import Receiver

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
