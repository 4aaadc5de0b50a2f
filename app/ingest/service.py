"""Ingestion: keep every raw mail first, then turn it into a ticket message exactly once.

``receive`` stores the raw bytes (idempotent per mailbox, folder, UIDVALIDITY and UID) and
``process`` parses them off the event loop, runs the pipeline's filters, and creates or updates
the ticket, in the caller's transaction. A mail that cannot be processed is quarantined with its
reason and can be retried; nothing is ever dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from app.agents.models import AgentRole
from app.attachments import service as attachments
from app.attachments.service import FileData
from app.audit import service as audit
from app.auth.schemas import Principal, system_principal
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.errors import Conflict, NotFound
from app.core.logging import get_logger
from app.core.message_ids import read_token
from app.core.pagination import SortKey, next_cursor
from app.customers import service as customers
from app.db.locks import lock_values
from app.events import service as events
from app.events.schemas import MailQuarantined
from app.gdpr import service as subject_rights
from app.ingest import repository
from app.ingest.models import InboundMail, InboundStatus
from app.ingest.parser import ParsedMail, UnparseableMail, parse_mail
from app.ingest.pipeline import (
    Context,
    Facts,
    Policy,
    choose_customer_address,
    decide,
    ticket_number_pattern,
)
from app.mailboxes import service as mailboxes
from app.outbound import service as outbound
from app.outbound.service import OutboundConfig
from app.queues import service as queues
from app.routing import service as routing
from app.routing.facts import Trigger
from app.routing.service import RoutingContext
from app.tickets import service as tickets
from app.tickets.models import CONVERSATION_KINDS, LinkKind, MailKind, ThreadMatch
from app.tickets.schemas import MailMessage, ThreadCandidate

log = get_logger(__name__)

IMPORT_SOURCE = "import"
"""The source of mail brought in by `ticketry import` (live mail is "imap")."""
MAX_ATTEMPTS = 3
_PASSING_FAILURES = (DBAPIError, StaleDataError, TimeoutError, ConnectionError)
_NEVER_A_TICKET = frozenset({MailKind.auto_reply, MailKind.bounce})


@dataclass(frozen=True)
class IngestConfig:
    secret_key: str
    policy: Policy
    max_bytes: int
    public_base_url: str = "http://localhost:8000"
    """For the status link in acknowledgements."""

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestConfig:
        return cls(
            secret_key=settings.resolved_secret_key(),
            policy=Policy(
                ticket_number_prefix=settings.ticket_number_prefix,
                reply_to_closed=settings.reply_to_closed,
                auto_reply_limit_per_day=settings.auto_reply_limit_per_day,
            ),
            max_bytes=settings.max_mail_mb * 1024 * 1024,
            public_base_url=settings.public_base_url,
        )

    @property
    def outbound(self) -> OutboundConfig:
        return OutboundConfig(
            secret_key=self.secret_key,
            public_base_url=self.public_base_url,
            ticket_number_prefix=self.policy.ticket_number_prefix,
        )


@dataclass(frozen=True)
class Outcome:
    """What became of one mail, for summaries (import, logs)."""

    inbound_id: int
    status: InboundStatus
    new_ticket: bool
    ticket_id: int | None


async def receive(
    session: AsyncSession,
    raw: bytes,
    *,
    source: str,
    mailbox_id: int | None = None,
    folder: str | None = None,
    uidvalidity: int | None = None,
    uid: int | None = None,
) -> int:
    """Store the raw mail; returns its id (the existing one if this UID was stored before)."""
    sha256 = await attachments.store_blob(session, raw)
    inserted = await repository.insert_raw(
        session,
        {
            "source": source,
            "mailbox_id": mailbox_id,
            "folder": folder,
            "uidvalidity": uidvalidity,
            "uid": uid,
            "raw_sha256": sha256,
            "size": len(raw),
            "status": InboundStatus.received,
        },
    )
    if inserted is not None:
        return inserted
    # Only an IMAP mail (all four set) can meet a stored one on the unique constraint.
    if mailbox_id is None or folder is None or uidvalidity is None or uid is None:
        raise RuntimeError("an inbound mail without a mailbox UID clashed with a stored one")
    existing = await repository.id_for_uid(session, mailbox_id, folder, uidvalidity, uid)
    if existing is None:
        raise RuntimeError(f"UID {uid} of mailbox {mailbox_id} is neither new nor stored")
    return existing


def _content_hash(mail: ParsedMail) -> str:
    """What makes two deliveries the same mail: not the trace headers each mailbox adds."""
    significant = [
        mail.message_id,
        mail.from_address,
        mail.date.isoformat() if mail.date else None,
        mail.subject,
        mail.body_text,
        sorted(hashlib.sha256(a.content).hexdigest() for a in mail.attachments),
    ]
    return hashlib.sha256(json.dumps(significant).encode()).hexdigest()


def _actor(inbound: InboundMail) -> Principal:
    source = f"mailbox {inbound.mailbox_id}" if inbound.mailbox_id else inbound.source
    return system_principal(f"ingest ({source})")


MAX_REFERENCES = 50
"""The newest References looked up; a thread longer than that is still found by its end."""


async def _tokens(
    session: AsyncSession, headers: list[str], config: IngestConfig
) -> dict[str, ThreadCandidate]:
    """Our own (signed) Message-IDs among the headers, with their tickets."""
    found = {}
    for header in headers:
        token = read_token(config.secret_key, header)
        if token is not None:
            candidate = await tickets.find_candidate(session, ticket_id=token[0])
            if candidate is not None:
                found[header] = candidate
    return found


async def _facts(
    session: AsyncSession,
    mail: ParsedMail,
    config: IngestConfig,
    customer_address: str | None,
    *,
    imported: bool,
) -> Facts:
    referenced = [*mail.in_reply_to, *mail.references[-MAX_REFERENCES:]]
    by_message_id = await tickets.thread_candidates(session, referenced)
    subject_ticket, sender_known = None, False
    numbers = ticket_number_pattern(config.policy.ticket_number_prefix).findall(mail.subject)
    if numbers:
        subject_ticket = await tickets.find_candidate(session, number=int(numbers[-1]))
        if subject_ticket is not None and customer_address:
            sender = await customers.customer_id_for_email(session, customer_address)
            sender_known = sender == subject_ticket.customer_id
    # A bounce names the mail that did not arrive in a part anyone can write: only our own
    # signed Message-IDs there are believed.
    bounced = await _tokens(session, mail.bounced_message_ids[:MAX_REFERENCES], config)
    automatic = 0
    if customer_address:
        automatic = await repository.count_automatic_answers(
            session, customer_address, utcnow() - timedelta(hours=24)
        )
    own_addresses = frozenset(
        address for mailbox in await mailboxes.list_active(session) for address in mailbox.addresses
    )
    return Facts(
        own_addresses=own_addresses,
        is_own_message_id=bool(mail.message_id and read_token(config.secret_key, mail.message_id)),
        tokens=await _tokens(session, referenced, config),
        by_message_id=by_message_id,
        subject_ticket=subject_ticket,
        sender_known_to_subject_ticket=sender_known,
        bounced_ticket=next(iter(bounced.values()), None),
        automatic_answers_today=automatic,
        imported=imported,
    )


def _mail_message(mail: ParsedMail, ctx: Context) -> MailMessage:
    return MailMessage(
        from_address=mail.from_address,
        subject=mail.subject,
        body_text=mail.body_text,
        body_html=mail.body_html,
        new_text=mail.new_text,
        kind=ctx.kind,
        threaded_by=ctx.threaded_by,
        threading_detail=ctx.threading_detail,
        to=mail.to,
        cc=mail.cc,
        reply_to=mail.reply_to,
        message_id=mail.message_id,
        in_reply_to=mail.in_reply_to[0] if mail.in_reply_to else None,
        references=mail.references,
        sent_at=mail.date,
        attachments=[
            FileData(a.filename, a.content_type, a.content, a.content_id, a.inline)
            for a in mail.attachments
        ],
    )


async def _queue_for(session: AsyncSession, inbound: InboundMail, mail: ParsedMail) -> int | None:
    """The queue serving the address the customer wrote to, else the mailbox's default."""
    queue = await queues.queue_for_addresses(session, [*mail.delivered_to, *mail.to, *mail.cc])
    if queue is not None:
        return queue.id
    if inbound.mailbox_id is not None:
        mailbox = await mailboxes.get(session, inbound.mailbox_id)
        if mailbox is not None:
            return mailbox.default_queue_id
    return None


async def _quarantine(session: AsyncSession, inbound: InboundMail, reason: str) -> None:
    inbound.status = InboundStatus.quarantined
    inbound.quarantine_reason = reason
    inbound.processed_at = utcnow()
    await session.flush()
    await events.emit(
        session,
        MailQuarantined(inbound_id=inbound.id, mailbox_id=inbound.mailbox_id, reason=reason),
    )


async def process(session: AsyncSession, inbound_id: int, config: IngestConfig) -> Outcome:
    """Turn a stored mail into a ticket message (or mark it a duplicate, or quarantine it)."""
    inbound = await repository.get(session, inbound_id, for_update=True)
    if inbound is None:
        raise NotFound(f"Inbound mail {inbound_id} does not exist.")
    if inbound.status in (InboundStatus.processed, InboundStatus.duplicate):
        return Outcome(inbound.id, inbound.status, False, inbound.ticket_id)
    raw = await attachments.blob(session, inbound.raw_sha256)
    try:
        mail = await asyncio.to_thread(parse_mail, raw, max_bytes=config.max_bytes)
    except UnparseableMail as exc:
        await _quarantine(session, inbound, exc.reason)
        return Outcome(inbound.id, inbound.status, False, None)
    inbound.message_id_header = mail.message_id
    inbound.content_hash = await asyncio.to_thread(_content_hash, mail)
    inbound.sender = mail.from_address
    # The same mail reaching two of our mailboxes is processed one at a time: one ticket.
    await lock_values(session, "inbound-mail", [inbound.content_hash])
    twin = await repository.find_processed_twin(session, inbound)
    if twin is not None:
        inbound.status = InboundStatus.duplicate
        inbound.kind, inbound.ticket_id, inbound.message_id = (
            twin.kind,
            twin.ticket_id,
            twin.message_id,
        )
        inbound.auto_reply_allowed = False
        inbound.processed_at = utcnow()
        await session.flush()
        return Outcome(inbound.id, inbound.status, False, inbound.ticket_id)

    customer_address = choose_customer_address(mail)
    facts = await _facts(
        session, mail, config, customer_address, imported=inbound.source == IMPORT_SOURCE
    )
    ctx = decide(mail, facts, config.policy)
    inbound.kind = ctx.kind
    inbound.auto_reply_allowed = ctx.auto_reply_allowed
    if ctx.kind is MailKind.own or (ctx.target is None and ctx.kind in _NEVER_A_TICKET):
        # Kept (raw, and marked as what it is) but no ticket: our own mail come back, or an
        # auto-reply or bounce that answers nothing of ours.
        inbound.status, inbound.processed_at = InboundStatus.processed, utcnow()
        await session.flush()
        return Outcome(inbound.id, inbound.status, False, None)
    if ctx.customer_address is None:
        await _quarantine(
            session,
            inbound,
            "The mail has no usable From address, so no customer to file it under.",
        )
        return Outcome(inbound.id, inbound.status, False, None)

    actor = _actor(inbound)
    resolve_sender = partial(
        customers.resolve_customer,
        session,
        actor,
        customer_id=None,
        email=ctx.customer_address,
        name=mail.from_name if ctx.customer_address == mail.from_address else None,
    )
    customer = await resolve_sender()
    # An erasure of the sender or of the ticket's customer still running is waited for: the
    # erased person's mail then opens a new ticket under a new customer (the erasure took
    # their addresses), never one filed into the emptied records.
    target_customer = [ctx.target.customer_id] if ctx.target is not None else []
    erased = await subject_rights.erased_customers(session, [customer.id, *target_customer])
    if ctx.target is not None and ctx.target.customer_id in erased:
        ctx.target, ctx.threaded_by = None, ThreadMatch.new_ticket
        ctx.threading_detail = "the ticket's customer was erased"
    if customer.id in erased:
        customer = await resolve_sender()
    message_data = _mail_message(mail, ctx)
    new_ticket = ctx.target is None
    routing_context = RoutingContext(
        actor,
        config.outbound,
        reply_to=ctx.customer_address if ctx.auto_reply_allowed else None,
    )
    if ctx.target is not None:
        message = await tickets.add_mail(
            session, actor, ctx.target.id, message_data, customer_id=customer.id
        )
        ticket_id = ctx.target.id
        if ctx.kind in CONVERSATION_KINDS:
            await routing.route(
                session,
                await tickets.get_ticket(session, actor, ticket_id, for_update=True),
                trigger=Trigger.message_received,
                context=routing_context,
                message=message,
                delivered_to=mail.delivered_to,
            )
    else:
        queue_id = await _queue_for(session, inbound, mail)
        ticket, message = await tickets.open_ticket_from_mail(
            session,
            actor,
            message_data,
            customer_id=customer.id,
            queue_id=queue_id,
            mailbox_id=inbound.mailbox_id,
        )
        ticket_id = ticket.id
        auto_replied = await routing.route(
            session,
            ticket,
            trigger=Trigger.ticket_created,
            context=routing_context,
            message=message,
            delivered_to=mail.delivered_to,
        )
        if routing_context.reply_to is not None and not auto_replied:
            await outbound.acknowledge(
                session, actor, ticket, routing_context.reply_to, config.outbound
            )
        if ctx.suggested is not None:
            await tickets.link(
                session,
                actor,
                ticket.id,
                ctx.suggested.id,
                LinkKind.possible_thread,
                ctx.suggestion_reason,
            )
        if ctx.follow_up_of is not None:
            await tickets.link(
                session,
                actor,
                ticket.id,
                ctx.follow_up_of.id,
                LinkKind.follow_up,
                ctx.threading_detail,
            )
    inbound.status = InboundStatus.processed
    inbound.ticket_id, inbound.message_id = ticket_id, message.id
    inbound.processed_at = utcnow()
    inbound.quarantine_reason = None
    await session.flush()
    return Outcome(inbound.id, inbound.status, new_ticket, ticket_id)


async def process_or_quarantine(
    maker: async_sessionmaker[AsyncSession], inbound_id: int, config: IngestConfig
) -> Outcome:
    """Process a stored mail in its own transaction, and go on with the next mail whatever
    happens: a passing failure (database hiccup, a concurrent edit) leaves the mail to be
    tried again; anything else, or the third failure, sets it aside with the error."""
    async with maker.begin() as session:
        # Counted (and committed) first, so a mail that kills the process is noticed too.
        attempts = await repository.count_attempt(session, inbound_id)
    if attempts > MAX_ATTEMPTS:
        async with maker.begin() as session:
            await quarantine(
                session, inbound_id, f"Processing was interrupted {MAX_ATTEMPTS} times."
            )
        return Outcome(inbound_id, InboundStatus.quarantined, False, None)
    try:
        async with maker.begin() as session:
            outcome = await process(session, inbound_id, config)
    except Exception as exc:
        passing = isinstance(exc, _PASSING_FAILURES) and attempts < MAX_ATTEMPTS
        log.exception("mail_processing_failed", inbound_id=inbound_id, will_retry=passing)
        if passing:
            return Outcome(inbound_id, InboundStatus.received, False, None)
        async with maker.begin() as session:
            await quarantine(session, inbound_id, f"Processing failed: {type(exc).__name__}: {exc}")
        return Outcome(inbound_id, InboundStatus.quarantined, False, None)
    log.info(
        "mail_ingested",
        inbound_id=inbound_id,
        status=outcome.status.value,
        ticket_id=outcome.ticket_id,
        new_ticket=outcome.new_ticket,
    )
    return outcome


async def quarantine(session: AsyncSession, inbound_id: int, reason: str) -> None:
    """Set a mail aside after an unexpected failure, with what went wrong (unless it was
    processed after all, e.g. a commit whose answer was lost)."""
    inbound = await repository.get(session, inbound_id, for_update=True)
    if inbound is not None and inbound.status is InboundStatus.received:
        await _quarantine(session, inbound, reason)


async def pending(
    session: AsyncSession, *, mailbox_id: int | None = None, source: str | None = None
) -> list[int]:
    """Mails stored but not processed (a crash came between the two, or a passing failure)."""
    return await repository.ids_with_status(
        session, InboundStatus.received, mailbox_id=mailbox_id, source=source
    )


async def unhandled_on_server(
    session: AsyncSession, mailbox_id: int, folder: str, uidvalidity: int
) -> list[tuple[int, int]]:
    return await repository.unhandled_on_server(session, mailbox_id, folder, uidvalidity)


async def mark_handled_on_server(session: AsyncSession, ids: list[int]) -> None:
    await repository.mark_handled_on_server(session, ids, utcnow())


# --- API ------------------------------------------------------------------------------------


async def get_inbound(session: AsyncSession, actor: Principal, inbound_id: int) -> InboundMail:
    actor.require(AgentRole.supervisor)
    inbound = await repository.get(session, inbound_id)
    if inbound is None:
        raise NotFound(f"Inbound mail {inbound_id} does not exist.")
    return inbound


async def raw_mail(session: AsyncSession, actor: Principal, inbound_id: int, reason: str) -> bytes:
    """The mail as received, unmasked: it is the evidence of what arrived, so only admins
    read it, on purpose, audited with the reason given."""
    actor.require(AgentRole.admin)
    inbound = await get_inbound(session, actor, inbound_id)
    await audit.record_read(
        session,
        actor,
        "inbound_mail",
        inbound.id,
        action="inbound_mail.raw_viewed",
        detail={"reason": reason},
    )
    return await attachments.blob(session, inbound.raw_sha256)


async def list_quarantine(
    session: AsyncSession, actor: Principal, cursor: str | None, limit: int
) -> tuple[list[InboundMail], str | None]:
    actor.require(AgentRole.supervisor)
    key = SortKey(InboundMail.id, InboundMail.id, descending=True)
    rows = await repository.list_by_status(session, InboundStatus.quarantined, key, cursor, limit)
    return next_cursor(rows, key, limit)


async def retry(
    session: AsyncSession, actor: Principal, inbound_id: int, config: IngestConfig
) -> InboundMail:
    """Process a quarantined mail again (after a fix, or a changed limit)."""
    inbound = await get_inbound(session, actor, inbound_id)
    if inbound.status is not InboundStatus.quarantined:
        raise Conflict(
            f"Inbound mail {inbound_id} is {inbound.status.value}, not quarantined: "
            "only quarantined mail is retried."
        )
    await audit.record(session, actor, "inbound_mail.retried", "inbound_mail", inbound_id)
    inbound.attempts += 1
    await process(session, inbound_id, config)
    return await get_inbound(session, actor, inbound_id)
