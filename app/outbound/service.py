"""Mail that goes out: replies and acknowledgements are written to the outbox in the transaction
that writes their message, notifications to agents in the transaction that decided them; a
worker sends them after commit (see ``worker.py``)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from app.attachments.models import Attachment
from app.auth.schemas import Principal
from app.core.config import Settings
from app.core.errors import Conflict, Invalid
from app.core.message_ids import outgoing_message_id
from app.core.types import email_domain
from app.customers import service as customers
from app.events import service as events
from app.events.schemas import OutboundFailed
from app.ingest.pipeline import is_no_reply_address
from app.mailboxes import service as mailboxes
from app.mailboxes.models import Mailbox
from app.outbound import repository
from app.outbound.compose import (
    OutgoingFile,
    OutgoingMail,
    references_for,
    ticket_subject,
)
from app.outbound.models import DeliveryStatus, MailPurpose, OutboundMail
from app.outbound.smtp import Delivery, SmtpFailure
from app.privacy import patterns
from app.privacy.detectors import mask_text
from app.queues import service as queues
from app.templates import service as templates
from app.templates.rendering import render_source
from app.tickets import service as tickets
from app.tickets.models import Channel, MailKind, Message, MessageDirection, Ticket
from app.tickets.schemas import MessageCreate

log = structlog.get_logger(__name__)

MAX_RETRY_DELAY = timedelta(hours=6)


@dataclass(frozen=True)
class OutboundConfig:
    secret_key: str
    public_base_url: str
    ticket_number_prefix: str
    max_attempts: int = 10
    retry_seconds: float = 60

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundConfig:
        return cls(
            secret_key=settings.resolved_secret_key(),
            public_base_url=settings.public_base_url,
            ticket_number_prefix=settings.ticket_number_prefix,
            max_attempts=settings.outbound_max_attempts,
            retry_seconds=settings.outbound_retry_seconds,
        )


# --- choosing the mailbox and checking recipients ------------------------------------------------


async def sending_mailbox(session: AsyncSession, ticket: Ticket) -> Mailbox | None:
    """The mailbox the ticket came in through, else its queue's, else the only one that sends."""
    candidates: list[int] = []
    if ticket.mailbox_id is not None:
        candidates.append(ticket.mailbox_id)
    if ticket.queue_id is not None:
        queue = await queues.find_queue(session, ticket.queue_id)
        if queue is not None and queue.mailbox_id is not None:
            candidates.append(queue.mailbox_id)
    for mailbox_id in candidates:
        mailbox = await mailboxes.get(session, mailbox_id)
        if mailbox is not None and mailbox.active and mailbox.smtp_host:
            return mailbox
    senders = [m for m in await mailboxes.list_active(session) if m.smtp_host]
    return senders[0] if len(senders) == 1 else None


async def _own_addresses(session: AsyncSession) -> frozenset[str]:
    own: set[str] = set()
    for mailbox in await mailboxes.list_active(session):
        own.update(a.lower() for a in mailbox.addresses)
        own.add(mailboxes.sender_address(mailbox)[1].lower())
    return frozenset(own)


async def refused_recipients(session: AsyncSession, addresses: list[str]) -> dict[str, str]:
    """Addresses no mail may go to, with the reason: our own (a loop), no-reply addresses and
    mailer daemons (they never read it and may answer automatically), blocked customers."""
    own = await _own_addresses(session)
    blocked = await customers.blocked_among(session, addresses)
    reasons: dict[str, str] = {}
    for address in addresses:
        lowered = address.lower()
        if lowered in own:
            reasons[address] = "is one of our own mailbox addresses: the mail would loop back"
        elif is_no_reply_address(lowered):
            reasons[address] = "is a no-reply or mailer-daemon address that takes no mail"
        elif lowered in blocked:
            reasons[address] = "belongs to a blocked customer"
    return reasons


async def _check_recipients(session: AsyncSession, data: MessageCreate, to: list[str]) -> None:
    fields = {"to": to, "cc": data.cc, "bcc": data.bcc}
    refused = await refused_recipients(session, [a for group in fields.values() for a in group])
    for field, addresses in fields.items():
        for address in addresses:
            if address in refused:
                raise Invalid(
                    f"Not sent: {address} {refused[address]}. Remove it from the recipients.",
                    field=f"body.{field}",
                )


# --- writing replies and acknowledgements ------------------------------------------------------


async def _attachment_copies(
    session: AsyncSession, actor: Principal, attachment_ids: list[int]
) -> list[Attachment]:
    """Attachments the agent can already see (on any ticket of theirs), sent again."""
    copies = []
    for attachment_id in attachment_ids:
        original = await tickets.get_attachment(session, actor, attachment_id)
        copies.append(
            Attachment(
                sha256=original.sha256,
                filename=original.filename,
                content_type=original.content_type,
                size=original.size,
                content_id=original.content_id,
                inline=original.inline,
            )
        )
    return copies


async def post_message(
    session: AsyncSession,
    actor: Principal,
    ticket_id: int,
    data: MessageCreate,
    config: OutboundConfig,
    *,
    automatic_update: bool = False,
) -> Message:
    """A reply, an internal note or a recorded customer message. A public reply is queued to be
    mailed in the same transaction; notes are never mailed. An ``automatic_update`` reply is
    mailed as automatic and counts as no agent's reply."""
    ticket = await tickets.get_ticket(session, actor, ticket_id, for_update=True)
    if data.template_id is not None:
        rendered = await templates.render_for_ticket(
            session,
            actor,
            data.template_id,
            ticket.id,
            public_base_url=config.public_base_url,
            ticket_number_prefix=config.ticket_number_prefix,
        )
        data = data.model_copy(
            update={"body_text": rendered.body_text, "body_html": rendered.body_html}
        )
    is_reply = data.public and data.direction is MessageDirection.outbound
    mailbox = None
    if is_reply:
        to = await tickets.reply_recipients(session, ticket, data)
        if not to:
            raise Invalid(
                "The customer has no email address: give the recipients in `to`.", field="body.to"
            )
        await _check_recipients(session, data, to)
        mailbox = await sending_mailbox(session, ticket)
        if mailbox is None:
            raise Conflict(
                f"Ticket {ticket.number} has no mailbox to send from. Give its queue a mailbox "
                "with an SMTP server (PATCH /api/v1/queues/{id} with `mailbox_id`), or set "
                "up SMTP on the mailbox it came in through."
            )
    message = await tickets.add_message(
        session,
        actor,
        ticket.id,
        data,
        copied_attachments=await _attachment_copies(session, actor, data.attachment_ids),
        automatic_update=automatic_update,
    )
    if mailbox is not None:
        await _queue(session, ticket, message, mailbox, MailPurpose.reply, config)
    return message


async def _queue(
    session: AsyncSession,
    ticket: Ticket,
    message: Message,
    mailbox: Mailbox,
    purpose: MailPurpose,
    config: OutboundConfig,
) -> OutboundMail:
    """Give the message its mail headers and put it in the outbox."""
    _, from_address = mailboxes.sender_address(mailbox)
    parent = await tickets.last_customer_mail(session, ticket.id)
    message.channel = Channel.email
    message.from_address = from_address
    message.message_id = outgoing_message_id(
        config.secret_key, ticket.id, message.id, email_domain(from_address)
    )
    message.subject = ticket_subject(
        message.subject or ticket.subject,
        prefix=config.ticket_number_prefix,
        number=ticket.number,
        reply=purpose is MailPurpose.reply and parent is not None,
    )
    if parent is not None:
        message.in_reply_to = parent.message_id
        message.references = references_for(parent.message_id, parent.references)
    row = OutboundMail(
        message_id=message.id, ticket_id=ticket.id, mailbox_id=mailbox.id, purpose=purpose
    )
    session.add(row)
    await session.flush()
    message.delivery = row
    return row


async def _acknowledgement_settings(
    session: AsyncSession, ticket: Ticket, mailbox: Mailbox | None
) -> tuple[bool, int | None]:
    """Whether to acknowledge, and with which template: the queue decides when it says so,
    else the mailbox the ticket came through (a web form ticket has none: no by default)."""
    queue = await queues.find_queue(session, ticket.queue_id) if ticket.queue_id else None
    wanted = mailbox.acknowledge if mailbox is not None else False
    if queue is not None and queue.acknowledge is not None:
        wanted = queue.acknowledge
    template_id = (queue.acknowledgement_template_id if queue else None) or (
        mailbox.acknowledgement_template_id if mailbox else None
    )
    return wanted, template_id


async def acknowledge(
    session: AsyncSession,
    actor: Principal,
    ticket: Ticket,
    address: str,
    config: OutboundConfig,
) -> Message | None:
    """Answer a new ticket automatically with its number and status link, when its queue or
    mailbox wants that. The caller has decided that the sender may get an automatic answer
    (a person wrote; no auto-reply, bounce or list)."""
    came_through = await mailboxes.get(session, ticket.mailbox_id) if ticket.mailbox_id else None
    wanted, template_id = await _acknowledgement_settings(session, ticket, came_through)
    if not wanted:
        return None
    sent, outcome = await auto_reply(session, actor, ticket, address, template_id, config)
    if sent is None:
        log.info("acknowledgement_skipped", ticket_id=ticket.id, reason=outcome)
    return sent


async def auto_reply(
    session: AsyncSession,
    actor: Principal,
    ticket: Ticket,
    address: str,
    template_id: int | None,
    config: OutboundConfig,
) -> tuple[Message | None, str]:
    """Mail the customer an automatic answer from the template (the built-in acknowledgement
    when None), marked as automatic; returns the message, or None and why not."""
    # The mailbox first: it is usually in the session already, and without one (a mailbox
    # that only receives) the recipient checks' queries are not needed.
    mailbox = await sending_mailbox(session, ticket)
    if mailbox is None:
        return None, "not sent: the ticket has no mailbox to send from"
    refused = await refused_recipients(session, [address])
    if refused:
        return None, f"not sent: {address} {refused[address]}"
    sender_name, _ = mailboxes.sender_address(mailbox)
    rendered = await templates.render_acknowledgement(
        session,
        template_id,
        ticket,
        sender_name=sender_name,
        public_base_url=config.public_base_url,
        ticket_number_prefix=config.ticket_number_prefix,
    )
    message = await tickets.add_automatic_reply(
        session,
        actor,
        ticket,
        to=address,
        subject=rendered.subject or ticket.subject,
        body_text=rendered.body_text,
        body_html=rendered.body_html,
        template_id=template_id,
    )
    await _queue(session, ticket, message, mailbox, MailPurpose.acknowledgement, config)
    return message, f"queued to {address}"


# --- notifying agents ------------------------------------------------------------------------


def _notification_text(title: str, current: Mapping[str, Any], cause: str, link: str) -> str:
    """The built-in notification: what the ticket is, why it is mailed, where to open it."""
    return (
        f"{title}\n"
        f"Priority: {current['priority']}\n"
        f"Status: {current['status']}\n"
        f"Why: {cause}\n"
        f"\n"
        f"{link}\n"
    )


async def _notification_content(
    session: AsyncSession,
    ticket: Ticket,
    template_id: int | None,
    cause: str,
    current: Mapping[str, Any],
    config: OutboundConfig,
) -> tuple[str, str] | str:
    """The subject and text of a notification, or why there is none."""
    link = f"{config.public_base_url}/api/v1/tickets/{ticket.id}"
    # Masked as in every answer to agents: this mail leaves for their inboxes. Workers have
    # no request to bring the configured patterns up to date, so this does.
    await patterns.refresh(session)
    shown_subject = mask_text(ticket.subject)
    # The ticket's number without its [#...] tag: an agent answering the notification must
    # not write into the customer's conversation.
    subject = f"Ticket {config.ticket_number_prefix}{ticket.number}: {shown_subject}"
    if template_id is None:
        return subject, _notification_text(subject, current, cause, link)
    template = await templates.find_template(session, template_id)
    if template is None or not template.active:
        return f"not sent: template {template_id} no longer exists or is not active"
    variables = await templates.variables_for_ticket(
        session,
        ticket,
        agent_name=None,
        agent_email=None,
        public_base_url=config.public_base_url,
        ticket_number_prefix=config.ticket_number_prefix,
    )
    variables["ticket"].update(current, subject=shown_subject)
    try:
        rendered = render_source(template.subject, template.body, template.body_format, variables)
    except Invalid as exc:
        return f"not sent: template {template_id} cannot be filled in: {exc.detail}"
    return rendered.subject or subject, rendered.body_text


async def notify(
    session: AsyncSession,
    ticket: Ticket,
    addresses: Sequence[str],
    *,
    template_id: int | None,
    cause: str,
    current: Mapping[str, Any],
    config: OutboundConfig,
) -> tuple[OutboundMail | None, str]:
    """Queue a mail about the ticket to agents (or a fixed address), apart from the customer's
    conversation: the template when given, else the built-in text; ``current`` holds the
    ticket's priority and status as the caller leaves them. Returns the outbox row, or None
    and why not."""
    mailbox = await sending_mailbox(session, ticket)
    if mailbox is None:
        return None, "not sent: the ticket has no mailbox to send from"
    refused = await refused_recipients(session, list(addresses))
    not_to = "; ".join(f"not to {address}: {reason}" for address, reason in refused.items())
    to = [address for address in addresses if address not in refused]
    if not to:
        return None, f"not sent: {not_to}"
    content = await _notification_content(session, ticket, template_id, cause, current, config)
    if isinstance(content, str):
        return None, content
    subject, body_text = content
    _, from_address = mailboxes.sender_address(mailbox)
    row = OutboundMail(
        ticket_id=ticket.id,
        mailbox_id=mailbox.id,
        purpose=MailPurpose.notification,
        to_addresses=to,
        subject=" ".join(subject.split())[:998],
        body_text=body_text,
        mail_message_id=make_msgid("ticketry-notification", email_domain(from_address)),
    )
    session.add(row)
    await session.flush()
    outcome = f"email to {', '.join(to)} queued (outbound mail {row.id})"
    return row, f"{outcome}; {not_to}" if not_to else outcome


# --- the outcome of a sending attempt ----------------------------------------------------------


def retry_delay(attempts: int, base_seconds: float) -> timedelta:
    """Exponential backoff with jitter, so mail held back by one outage is not all retried
    in the same second."""
    delay = timedelta(seconds=base_seconds * 2 ** max(attempts - 1, 0))
    return min(delay, MAX_RETRY_DELAY) * random.uniform(0.8, 1.2)  # noqa: S311 - not security


def record_sent(row: OutboundMail, delivery: Delivery, now: datetime) -> None:
    row.attempts += 1
    row.status = DeliveryStatus.sent
    row.sent_at = now
    row.smtp_reply = delivery.reply[:1000]
    row.refused_recipients = delivery.refused
    row.last_error = None


async def record_failure(
    session: AsyncSession,
    row: OutboundMail,
    failure: SmtpFailure,
    now: datetime,
    config: OutboundConfig,
) -> None:
    """A temporary failure is retried later; a permanent one, or too many, ends the mail as
    failed, visible on the message, and raises an ``outbound.failed`` event."""
    row.attempts += 1
    row.last_error = failure.reason
    if not failure.permanent and row.attempts < config.max_attempts:
        row.next_attempt_at = now + retry_delay(row.attempts, config.retry_seconds)
        log.warning(
            "mail_retry_later",
            outbound_id=row.id,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at.isoformat(),
            error=failure.reason,
        )
        return
    row.status = DeliveryStatus.failed
    row.failed_at = now
    log.warning("mail_failed", outbound_id=row.id, attempts=row.attempts, error=failure.reason)
    if row.message_id is None:
        # A notification: the event is about a message of the ticket; the row says it failed.
        return
    await events.emit(
        session,
        OutboundFailed(
            ticket_id=row.ticket_id,
            message_id=row.message_id,
            purpose=row.purpose,
            attempts=row.attempts,
            permanent=failure.permanent,
            reason=failure.reason,
        ),
    )


async def claim_due(session: AsyncSession, now: datetime) -> OutboundMail | None:
    return await repository.claim_due(session, now)


async def outgoing_mail(
    session: AsyncSession, row: OutboundMail, mailbox: Mailbox
) -> tuple[str, OutgoingMail]:
    """The envelope sender and the mail to build for an outbox row."""
    from_name, from_address = mailboxes.sender_address(mailbox)
    if row.message_id is None:
        assert row.to_addresses is not None  # the table's check: a notification has its mail
        assert row.subject is not None
        assert row.body_text is not None
        assert row.mail_message_id is not None
        return from_address, OutgoingMail(
            message_id=row.mail_message_id,
            from_address=from_address,
            from_name=from_name,
            to=row.to_addresses,
            cc=[],
            bcc=[],
            subject=row.subject,
            body_text=row.body_text,
            body_html=None,
            automatic=True,
            auto_submitted="auto-generated",
        )
    message = await tickets.message_with_attachments(session, row.message_id)
    files = [
        OutgoingFile(
            filename=a.filename,
            content_type=a.content_type,
            content=await tickets.attachment_content(session, a),
            content_id=a.content_id,
        )
        for a in message.attachments
    ]
    assert message.message_id is not None
    assert message.subject is not None
    return from_address, OutgoingMail(
        message_id=message.message_id,
        from_address=from_address,
        from_name=from_name,
        to=message.to_addresses,
        cc=message.cc_addresses,
        bcc=message.bcc_addresses,
        subject=message.subject,
        body_text=message.body_text,
        body_html=message.body_html,
        in_reply_to=message.in_reply_to,
        references=message.references,
        automatic=message.kind is MailKind.auto_reply,
        attachments=files,
    )
