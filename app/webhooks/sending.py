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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from standardwebhooks import Webhook as Signer

from app.webhooks.targets import TargetPolicy, UnsafeTarget, check_target

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


def http_client(timeout: float) -> httpx.AsyncClient:
    """Redirects are not followed (they could lead anywhere) and proxies from the
    environment are not used."""
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)


async def post(
    client: httpx.AsyncClient,
    url: str,
    policy: TargetPolicy,
    headers: dict[str, str],
    body: str,
) -> Attempt:
    """POST ``body``; 2xx is delivered, anything else an error. The answer's body is not
    read."""
    try:
        await check_target(url, policy)
    except UnsafeTarget as exc:
        return Attempt(None, None, str(exc))
    started = time.perf_counter()
    try:
        async with client.stream("POST", url, content=body.encode(), headers=headers) as answer:
            status_code = answer.status_code
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
