"""A person's data, exported (GDPR Art. 15) or erased everywhere (Art. 17).

Erasure decisions, per table (what stays is what statistics need, without the person):

- ``customers``: the row stays as the anonymous owner of their tickets (name, phone, customer
  number and attributes cleared; organisation and language kept); ``customer_emails`` and
  ``customer_external_ids`` are deleted, so a later mail from the address starts afresh.
- ``tickets``: kept as statistics rows (status, priority, channel, queue, team, assignee,
  category, every time and SLA figure); subject becomes ``[erased]``, tags and custom fields
  are cleared. Open tickets stay open, empty, for agents to close.
- ``messages`` of their tickets, and those they wrote elsewhere: deleted, with attachments,
  findings and outbound mails (the raw MIME of replies is built from the message, not kept);
  their tickets' notification mails to agents are deleted too (they quote the ticket);
  blobs no other attachment or raw mail uses are deleted; ``inbound_mails`` (raw mail kept by
  ingestion, quarantined mail from their addresses too) are deleted.
- follow-up notes and ticket link reasons become ``[erased]``; proactive update schedules and
  routing traces of their tickets are deleted.
- ``events`` (the feed, and the payload history of webhook deliveries, which send the event):
  those about their customer record, tickets, messages and raw mails keep only ids, states and
  times (``redaction.strip_content``); others lose what mentions the person.
- ``audit_events``: redacted the same way through the audit log's recorded redaction path,
  so ``verify`` still holds (see ``app.audit.chain``).
- anything else that may mention them (other messages' recipients, outbound refusals, webhook
  and job errors, bulk job selections, routing facts of other tickets, escalation outcomes,
  stored idempotent answers) is scrubbed of their identifiers: name, addresses, phone,
  customer number, external ids and every sensitive value found in their messages.
- other people's message texts (subject, text, HTML, new text) and ticket subjects keep their
  place: each occurrence of an identifier becomes as many ``*`` (``redaction.mask``), so the
  privacy findings stored as offsets into those texts stay right and are kept.
- ``customers.erased_at`` marks the person: ingestion waits for an erasure under way and files
  later mail as from a new customer (``erased_customers``).

There is no separate search index: searches run on the tables above.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import zipfile
from collections import Counter
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, not_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.models import AgentRole
from app.attachments import service as attachments
from app.attachments.models import Attachment
from app.audit import service as audit
from app.audit.schemas import AuditEventRead
from app.auth.schemas import Principal
from app.core.errors import NotFound
from app.customers.models import Customer
from app.customers.schemas import CustomerRead
from app.events import service as events
from app.events.models import Event
from app.events.schemas import CustomerErased
from app.followups.models import FollowUp
from app.gdpr import repository
from app.gdpr.redaction import ERASED, mask, needles_of, scrub, strip_content
from app.incidents.models import TicketUpdateSchedule
from app.ingest.models import InboundMail
from app.jobs.models import BulkJob, BulkJobItem
from app.outbound.models import OutboundMail
from app.privacy import service as privacy
from app.privacy.models import MessageFinding
from app.routing.models import RoutingTrace
from app.sla.models import TicketEscalation
from app.tickets.models import Message, Ticket, TicketLink
from app.tickets.schemas import MessageRead, TicketRead
from app.webhooks.models import WebhookDelivery

# --- export (Art. 15) --------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedFile:
    path: str
    sha256: str


@dataclass
class Export:
    """What a person's export holds: JSON documents by path, and files read when zipped."""

    documents: dict[str, Any] = field(default_factory=dict)
    files: list[ExportedFile] = field(default_factory=list)


async def _customer(session: AsyncSession, customer_id: int, *, lock: bool = False) -> Customer:
    customer = await repository.customer(session, customer_id, lock=lock)
    if customer is None:
        raise NotFound(f"Customer {customer_id} does not exist.")
    return customer


def _file_name(attachment: Attachment) -> str:
    # Only the name's last part, without anything a zip tool could take as a path.
    name = re.sub(r"[\x00-\x1f/\\]", "_", attachment.filename).lstrip(".") or "file"
    return f"attachments/{attachment.id}-{name}"


async def export_customer(
    session: AsyncSession, actor: Principal, customer_id: int, reason: str
) -> Export:
    """Everything held about the customer (supervisor or higher), unmasked: it is their own
    data. The read is audited as ``customer.exported`` with the reason."""
    actor.require(AgentRole.supervisor)
    customer = await _customer(session, customer_id)
    emails = [row.email.lower() for row in customer.emails]
    tickets = await repository.tickets_of(session, customer_id)
    ticket_ids = [t.id for t in tickets]
    # Exactly what an erasure would take as theirs.
    messages = await repository.messages_by(session, ticket_ids, customer_id, emails)
    inbound = await _inbound_mails(session, ticket_ids, [m.id for m in messages], emails)
    export = Export()
    # The read models mask numbers for every viewer; the person gets their own values back.
    export.documents["customer.json"] = CustomerRead.model_validate(customer).model_dump(
        mode="json"
    ) | {"attributes": customer.attributes}
    by_ticket: dict[int, list[dict[str, Any]]] = {t.id: [] for t in tickets}
    for message in messages:
        document = MessageRead.model_validate(message).model_dump(mode="json")
        if message.ticket_id in by_ticket:
            by_ticket[message.ticket_id].append(document)
        else:
            # Written on someone else's ticket: only the message is theirs.
            export.documents[f"messages/{message.id}.json"] = document
        export.files.extend(ExportedFile(_file_name(a), a.sha256) for a in message.attachments)
    export.files.extend(ExportedFile(f"mail/{mail_id}.eml", sha) for mail_id, sha in inbound)
    for ticket in tickets:
        document = TicketRead.model_validate(ticket).model_dump(mode="json")
        document |= {
            "subject": ticket.subject,
            "custom_fields": ticket.custom_fields,
            "messages": by_ticket[ticket.id],
        }
        export.documents[f"tickets/{ticket.number}.json"] = document
    about = await audit.events_about(
        session,
        {
            "customer": [customer_id],
            "ticket": ticket_ids,
            "message": [m.id for m in messages],
            "inbound_mail": [mail_id for mail_id, _ in inbound],
        },
    )
    export.documents["audit.json"] = [
        AuditEventRead.model_validate(e).model_dump(mode="json") for e in about
    ]
    await audit.record_read(
        session,
        actor,
        "customer",
        customer_id,
        action="customer.exported",
        detail={"reason": reason, "tickets": len(tickets), "files": len(export.files)},
    )
    return export


class _Chunks(io.RawIOBase):
    """A write-only stream the zip is written to, emptied after each entry: the archive goes
    out as it is made (``zipfile`` writes data descriptors when it cannot seek)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self._chunks = b"".join(self._chunks), []
        return data


async def zip_stream(
    maker: async_sessionmaker[AsyncSession], export: Export
) -> AsyncIterator[bytes]:
    """The export as a zip, streamed: JSON first, then each file, read from the database one
    at a time in a short session of its own and compressed off the event loop."""
    sink = _Chunks()
    archive = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED)
    for path, document in export.documents.items():
        data = json.dumps(document, ensure_ascii=False, indent=2).encode()
        await asyncio.to_thread(archive.writestr, path, data)
        yield sink.take()
    for file in export.files:
        async with maker() as session:
            content = await attachments.blob(session, file.sha256)
        await asyncio.to_thread(archive.writestr, file.path, content)
        yield sink.take()
    archive.close()
    yield sink.take()


# --- erasure (Art. 17) and retention share this -------------------------------------------------


@dataclass
class Scope:
    """What to erase: tickets and messages, and who (for a person's erasure)."""

    ticket_ids: list[int]
    message_ids: list[int]
    customer_id: int | None = None
    emails: list[str] = field(default_factory=list)
    needles: frozenset[str] = frozenset()


async def erase_content(
    session: AsyncSession, scope: Scope, counts: Counter[str]
) -> list[audit.Redaction]:
    """Erase the scope's content everywhere (see the module's list); counts rows per table.
    Returns the audit redactions the caller records with its own audit event."""
    inbound = await _inbound_mails(session, scope.ticket_ids, scope.message_ids, scope.emails)
    inbound_ids = [inbound_id for inbound_id, _ in inbound]
    blobs = await repository.attachment_blobs(session, scope.message_ids)
    blobs |= {sha for _, sha in inbound}
    about: dict[str, Collection[int]] = {
        "customer": [scope.customer_id] if scope.customer_id is not None else [],
        "ticket": scope.ticket_ids,
        "message": scope.message_ids,
        "inbound_mail": inbound_ids,
    }
    redactions = await _audit_redactions(session, about, scope.needles)
    counts["audit_events"] += len(redactions)
    await _scrub_events(session, about, scope.needles, counts)

    # Their tickets' outbound mail, notifications to agents included (they quote the ticket).
    counts["outbound_mails"] += await repository.delete_by_id(
        session, OutboundMail.ticket_id, scope.ticket_ids
    )
    for name, column in (
        ("attachments", Attachment.message_id),
        ("message_findings", MessageFinding.message_id),
        ("outbound_mails", OutboundMail.message_id),
    ):
        counts[name] += await repository.count_of_messages(session, column, scope.message_ids)
    counts["messages"] += await repository.delete_messages(session, scope.message_ids)
    counts["inbound_mails"] += await repository.delete_by_id(session, InboundMail.id, inbound_ids)
    counts["blobs"] += await repository.delete_unused_blobs(session, blobs)
    counts["ticket_follow_ups"] += await repository.set_text(
        session, FollowUp.note, FollowUp.ticket_id.in_(scope.ticket_ids), ERASED
    )
    counts["ticket_links"] += await repository.set_text(
        session, TicketLink.reason, repository.links_of(scope.ticket_ids), ERASED
    )
    counts["ticket_update_schedules"] += await repository.delete_by_id(
        session, TicketUpdateSchedule.ticket_id, scope.ticket_ids
    )
    counts["routing_traces"] += await repository.delete_by_id(
        session, RoutingTrace.ticket_id, scope.ticket_ids
    )
    counts["idempotency_records"] += await repository.delete_idempotency_records(
        session,
        scope.needles,
        [f"tickets/{i}" for i in scope.ticket_ids]
        + [f"messages/{i}" for i in scope.message_ids]
        + ([f"customers/{scope.customer_id}"] if scope.customer_id is not None else []),
        scope.customer_id,
    )
    if scope.needles:
        await _scrub_mentions(session, scope, counts)
    return redactions


async def _inbound_mails(
    session: AsyncSession,
    ticket_ids: Collection[int],
    message_ids: Collection[int],
    emails: list[str],
) -> list[tuple[int, str]]:
    """Raw mails (ids and blobs) that became the tickets or messages or came from the
    addresses, unparsed ones included."""
    inbound = await repository.inbound_mails_of(session, ticket_ids, message_ids, emails)
    if emails:
        inbound += await repository.unlinked_inbound_mails_from(session, emails)
    return inbound


async def _audit_redactions(
    session: AsyncSession, about: dict[str, Collection[int]], needles: frozenset[str]
) -> list[audit.Redaction]:
    redactions = [
        audit.Redaction(e, strip_content(e.before), strip_content(e.after))
        for e in await audit.events_about(session, about)
    ]
    done = {r.event.id for r in redactions}
    redactions += [
        audit.Redaction(e, scrub(e.before, needles), scrub(e.after, needles))
        for e in await audit.events_mentioning(session, needles)
        if e.id not in done
    ]
    # Events that held nothing to take out (ids and states only) stay as they are.
    return [r for r in redactions if (r.before, r.after) != (r.event.before, r.event.after)]


async def _scrub_events(
    session: AsyncSession,
    about: dict[str, Collection[int]],
    needles: frozenset[str],
    counts: Counter[str],
) -> None:
    """Events are the webhooks' payloads: scrubbing them scrubs the deliveries' history."""
    theirs = repository.events_about(about)
    changed = await repository.scrub_json(session, Event.id, Event.data, strip_content, theirs)
    if needles:
        changed += await repository.scrub_json(
            session,
            Event.id,
            Event.data,
            lambda data: scrub(data, needles),
            and_(not_(theirs), repository.mentioning(Event.data, needles)),
        )
    counts["events"] += len(changed)
    counts["webhook_deliveries"] += await repository.count_webhook_deliveries(session, changed)


async def _scrub_mentions(session: AsyncSession, scope: Scope, counts: Counter[str]) -> None:
    """Other rows that mention the person by an identifier."""
    needles = scope.needles
    if scope.emails:
        counts["messages"] += await repository.remove_addresses(session, scope.emails)
    # Free text of other people's messages and tickets: each occurrence is masked with as many
    # characters, so the privacy findings' offsets into these texts stay right.
    masked: set[int] = set()
    for message_column in (Message.subject, Message.body_text, Message.body_html, Message.new_text):
        masked.update(
            await repository.rewrite_text(
                session,
                Message.id,
                message_column,
                lambda value: mask(value, needles),
                repository.mentioning(message_column, needles),
            )
        )
    counts["messages"] += len(masked)
    counts["tickets"] += len(
        await repository.rewrite_text(
            session,
            Ticket.id,
            Ticket.subject,
            lambda value: mask(value, needles),
            and_(
                Ticket.id.not_in(scope.ticket_ids), repository.mentioning(Ticket.subject, needles)
            ),
            versioned=True,
        )
    )
    for name, key, column in (
        ("outbound_mails", OutboundMail.id, OutboundMail.refused_recipients),
        ("routing_traces", RoutingTrace.id, RoutingTrace.facts),
        ("routing_traces", RoutingTrace.id, RoutingTrace.applied),
        ("bulk_jobs", BulkJob.id, BulkJob.selection),
        ("bulk_jobs", BulkJob.id, BulkJob.changes),
    ):
        counts[name] += len(
            await repository.scrub_json(
                session,
                key,
                column,
                lambda value: scrub(value, needles),
                repository.mentioning(column, needles),
            )
        )
    for name, text_column in (
        ("outbound_mails", OutboundMail.subject),
        ("outbound_mails", OutboundMail.body_text),
        ("outbound_mails", OutboundMail.last_error),
        ("outbound_mails", OutboundMail.smtp_reply),
        ("webhook_deliveries", WebhookDelivery.last_error),
        ("bulk_job_items", BulkJobItem.error),
        ("inbound_mails", InboundMail.quarantine_reason),
        ("ticket_escalations", TicketEscalation.outcome),
        ("ticket_links", TicketLink.reason),
        ("ticket_follow_ups", FollowUp.note),
    ):
        counts[name] += await repository.set_text(
            session, text_column, repository.mentioning(text_column, needles), ERASED
        )


async def erase_customer(
    session: AsyncSession, actor: Principal, customer_id: int, reason: str
) -> dict[str, int]:
    """Erase the customer everywhere in this transaction (admin); returns rows per table.
    Audited as ``customer.erased`` (counts, the reason scrubbed of the person's
    identifiers) and emitted as the ``customer.erased`` event, neither with personal data."""
    actor.require(AgentRole.admin)
    customer = await _customer(session, customer_id, lock=True)
    emails = [row.email.lower() for row in customer.emails]
    tickets = await repository.tickets_of(session, customer_id, lock=True)
    ticket_ids = [t.id for t in tickets]
    messages = await repository.messages_by(session, ticket_ids, customer_id, emails)
    found = await privacy.findings_by_message(session, [m.id for m in messages])
    values = [
        customer.name,
        customer.phone,
        customer.customer_number,
        *emails,
        *(row.external_id for row in customer.external_ids),
        *_found_values(messages, found),
    ]
    scope = Scope(
        ticket_ids=ticket_ids,
        message_ids=[m.id for m in messages],
        customer_id=customer_id,
        emails=emails,
        needles=needles_of(values),
    )
    counts: Counter[str] = Counter()
    counts["customer_emails"] = len(emails)
    counts["customer_external_ids"] = len(customer.external_ids)
    redactions = await erase_content(session, scope, counts)
    counts["tickets"] += await repository.anonymise_tickets(session, ticket_ids, ERASED)
    await repository.anonymise_customer(session, customer_id)
    counts["customers"] = 1
    erased = dict(sorted(counts.items()))
    await audit.redact(
        session,
        actor,
        redactions,
        "customer.erased",
        "customer",
        customer_id,
        after={"reason": scrub(reason, scope.needles), "erased": erased},
    )
    await events.emit(session, CustomerErased(customer_id=customer_id, erased=erased))
    # The rows changed by plain statements: later reads in this session must not be served
    # the objects loaded before.
    for row in (customer, *tickets, *messages):
        session.expunge(row)
    return erased


def _found_values(
    messages: Collection[Message], found: dict[int, list[MessageFinding]]
) -> list[str]:
    """The sensitive values (identity numbers, cards, accounts) in the messages."""
    values = []
    for message in messages:
        texts = privacy.message_texts(message)
        for finding in found.get(message.id, []):
            values.append((texts[finding.field] or "")[finding.start : finding.end])
    return values


async def erased_customers(session: AsyncSession, customer_ids: Collection[int]) -> set[int]:
    """Those of the customers that are erased. Waits for an erasure of one of them still
    running (its row lock): mail in flight for a person being erased is then filed as from a
    stranger, never into the emptied records."""
    return await repository.erased_customers(session, customer_ids)
