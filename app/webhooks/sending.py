"""One signed POST to an endpoint, as the Standard Webhooks specification describes it:
``webhook-id`` (stable per event and endpoint, for the consumer to drop redeliveries),
``webhook-timestamp`` and ``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` of
``id.timestamp.body``, one per secret in force, space-separated)."""

from __future__ import annotations

import base64
import json
import math
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpcore
import httpx
from standardwebhooks import Webhook as Signer

from app.webhooks.targets import TargetPolicy, UnsafeTarget, connect_address, parse_target

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
USER_AGENT = "Ticketry-Webhooks/1"


def new_secret() -> str:
    """A signing secret in the Standard Webhooks format: ``whsec_`` and 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def payload(
    event_id: int | None,
    type_: str,
    occurred_at: datetime,
    entity: str,
    entity_id: int | None,
    data: dict[str, Any],
) -> str:
    return json.dumps(
        {
            "id": event_id,
            "type": type_,
            "occurred_at": occurred_at.isoformat(),
            "entity": entity,
            "entity_id": entity_id,
            "data": data,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def signed_headers(
    message_id: str, timestamp: datetime, body: str, signing_secrets: list[str]
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(math.floor(timestamp.timestamp())),
        "webhook-signature": " ".join(
            Signer(secret).sign(message_id, timestamp, body) for secret in signing_secrets
        ),
    }


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: the endpoint's status code and the time it took, or why not."""

    status_code: int | None
    latency_ms: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.error is None


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Opens each connection to an address the policy allows, resolved and checked right
    here, so no second lookup can put another address in its place. The URL keeps its host
    name: the ``Host`` header, TLS SNI and the certificate check all use it."""

    def __init__(self, policy: TargetPolicy) -> None:
        self._policy = policy
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await connect_address(host, port, self._policy)
        return await self._network.connect_tcp(
            address, port, timeout, local_address, socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: TargetPolicy) -> None:
        super().__init__(trust_env=False)
        # httpx takes no network backend: its pool is replaced by one like it (httpx's
        # default TLS settings and limits) that has one.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_CheckedBackend(policy),
        )


def http_client(timeout: float, policy: TargetPolicy) -> httpx.AsyncClient:
    """Connects only where ``policy`` allows (see ``_CheckedBackend``). Redirects are not
    followed (they could lead anywhere) and proxies from the environment are not used."""
    return httpx.AsyncClient(
        transport=_CheckedTransport(policy),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )


async def post(client: httpx.AsyncClient, url: str, headers: dict[str, str], body: str) -> Attempt:
    """POST ``body`` with a client of ``http_client``; 2xx is delivered, anything else an
    error. The answer's body is not read."""
    try:
        parse_target(url)
    except UnsafeTarget as exc:
        return Attempt(None, None, str(exc))
    started = time.perf_counter()
    try:
        async with client.stream("POST", url, content=body.encode(), headers=headers) as answer:
            status_code = answer.status_code
    except UnsafeTarget as exc:
        return Attempt(None, None, str(exc))
    except httpx.TimeoutException:
        return Attempt(None, _since(started), "timed out waiting for the endpoint")
    except httpx.HTTPError as exc:
        return Attempt(None, _since(started), f"could not reach the endpoint: {exc!r}"[:1000])
    latency = _since(started)
    if 200 <= status_code < 300:
        return Attempt(status_code, latency, None)
    return Attempt(status_code, latency, f"the endpoint answered HTTP {status_code}")


def _since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
