"""Tamper evidence for the audit log: a hash chain over the audit events, built after they
are written.

Why not hash at insert: each hash needs the previous one, so every audited transaction of the
service (the API, mail ingestion, the workers) would have to take one lock and commit one after
the other. Instead events are written as before, each with its transaction's id (``txid``),
and a sealer chains them later, in ``(txid, id)`` order, taking only rows of transactions older
than every transaction still running: exactly the event feed's rule (see
``app.events.service``), so no event can still appear behind a sealed one and the chain only
ever grows at its end. One sealer works at a time (a transaction-level advisory lock; another
process finding it taken simply skips its turn), so the chain never forks.

Each link stores its position, the event's id and txid, the event's content digest
(``sha256`` of its canonical JSON) and ``sha256(previous link's hash + content digest)``.
Verifying recomputes every link: an altered event no longer matches its digest, a deleted one
leaves a link without its event, a deleted link leaves a gap in the positions, an altered
link no longer continues the hash before it.

Redaction: erasing a data subject (or a retention pass) must remove personal data from audit
events too. The chain binds digests, not content, so a redacted event keeps its link: the
redacting code records, in the append-only ``audit_redactions``, each redacted event with
the digest of its new content, and writes one audit event of its own whose ``after`` holds
``audit_redactions: {count, digest}`` (``redactions_digest`` over the pairs). The database
lets ``before``/``after`` of an audit event change only inside a transaction that set
``ticketry.audit_redaction`` (``REDACTION_SETTING``) and recorded the event's redaction first;
every other UPDATE is refused as before. An event may be redacted again later (two people
mentioned in it): each redaction records the digest it started from, and ``verify`` accepts
an event whose digest differs from its link only when recorded redactions lead from the
sealed digest to its content, each vouched for by a sealed ``customer.erased`` or
``retention.applied`` event written in the redaction's own transaction whose claim matches
exactly that redacting event's set; it counts them as ``redacted`` and lists the redacting
events. Whoever can write as the application could still forge such a pair: the forgery is
then itself a sealed, listed erasure for the review (see the README's Audit trail).

The window: an event is unprotected from its write until it is sealed, that is until its
transaction and every older one have ended and the next seal pass ran (the workers seal every
few seconds; ``verify`` seals first). Rows changed in that window are sealed as they are then.
A superuser who rewrites both tables from some point to the end is caught only by comparing
the chain's head with a copy kept elsewhere: ``verify`` reports the head for that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from app.audit.models import AuditEvent

GENESIS = ""
"""The "previous hash" of the first link."""


def canonical(event: AuditEvent) -> str:
    """The event's content as JSON with sorted keys, no spaces and UTC ISO-8601 time: the same
    text for the same content, whatever wrote or read it."""
    content: dict[str, Any] = {
        "id": event.id,
        "occurred_at": event.occurred_at.astimezone(UTC).isoformat(),
        "actor_agent_id": event.actor_agent_id,
        "actor_label": event.actor_label,
        "actor_token_id": event.actor_token_id,
        "source_ip": event.source_ip,
        "request_id": event.request_id,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "before": event.before,
        "after": event.after,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_digest(event: AuditEvent) -> str:
    return hashlib.sha256(canonical(event).encode()).hexdigest()


def link_hash(previous: str, digest: str) -> str:
    return hashlib.sha256((previous + digest).encode()).hexdigest()


def redactions_digest(pairs: Iterable[tuple[int, str]]) -> str:
    """One digest over ``(event_id, redacted_digest)`` pairs, whatever their order."""
    lines = "".join(f"{event_id}:{digest}\n" for event_id, digest in sorted(pairs))
    return hashlib.sha256(lines.encode()).hexdigest()


REDACTION_SETTING = "ticketry.audit_redaction"
"""The transaction-local setting under which the database lets an audit event's content be
replaced (see the ``audit_events_guard`` trigger function)."""
