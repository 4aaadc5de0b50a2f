"""Message-IDs of our outgoing mail carry a signed token naming the ticket and message, so a
reply quoting one threads with certainty (and a forged one is ignored)."""

from __future__ import annotations

import hashlib
import hmac
import re

_TOKEN = re.compile(r"^<ticketry\.(\d+)\.(\d+)\.([0-9a-f]{20})@[^>]+>$")


def _signature(secret_key: str, ticket_id: int, message_id: int) -> str:
    payload = f"message-id:{ticket_id}.{message_id}".encode()
    return hmac.new(secret_key.encode(), payload, hashlib.sha256).hexdigest()[:20]


def outgoing_message_id(secret_key: str, ticket_id: int, message_id: int, domain: str) -> str:
    signature = _signature(secret_key, ticket_id, message_id)
    return f"<ticketry.{ticket_id}.{message_id}.{signature}@{domain}>"


def read_token(secret_key: str, header_value: str) -> tuple[int, int] | None:
    """The (ticket id, message id) of one of our Message-IDs, if its signature holds."""
    match = _TOKEN.match(header_value.strip())
    if match is None:
        return None
    ticket_id, message_id = int(match[1]), int(match[2])
    if not hmac.compare_digest(match[3], _signature(secret_key, ticket_id, message_id)):
        return None
    return ticket_id, message_id
