"""The customer's status page: a ticket found by its unguessable token, showing only what the
customer may see."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound
from app.ingest.pipeline import ticket_reference
from app.privacy import service as privacy
from app.privacy.detectors import mask_text
from app.privacy.models import FindingField
from app.status.schemas import Author, StatusMessage, StatusRead
from app.tickets import service as tickets
from app.tickets.models import MessageDirection, TicketStatus

MESSAGES_SHOWN = 10

STATUS_TEXT = {
    TicketStatus.new: "Received: we will answer soon",
    TicketStatus.open: "We are working on it",
    TicketStatus.pending: "Waiting for your answer",
    TicketStatus.on_hold: "Waiting for a third party",
    TicketStatus.solved: "Solved",
    TicketStatus.closed: "Closed",
}


def status_link(public_base_url: str, token: str) -> str:
    return f"{public_base_url}/status/{token}"


async def ticket_status(
    session: AsyncSession, token: str, *, ticket_number_prefix: str
) -> StatusRead:
    ticket = await tickets.find_by_status_token(session, token)
    if ticket is None:
        # The same answer for a wrong and a malformed token: nothing to learn by guessing.
        raise NotFound("There is no ticket at this address. Check the link in your mail.")
    messages = await tickets.conversation(session, ticket.id, limit=MESSAGES_SHOWN)
    # Whoever holds the link sees the page (a forwarded mail, a shared screen): values found
    # in the texts are masked as in every API answer.
    findings = await privacy.findings_by_message(session, [m.id for m in messages])
    texts = [privacy.masked(privacy.message_texts(m), findings.get(m.id, []))[0] for m in messages]
    return StatusRead(
        ticket_number=ticket.number,
        reference=ticket_reference(ticket_number_prefix, ticket.number),
        subject=mask_text(ticket.subject),
        status=ticket.status,
        status_text=STATUS_TEXT[ticket.status],
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        messages=[
            StatusMessage(
                author=Author.customer
                if m.direction is MessageDirection.inbound
                else Author.support,
                written_at=m.created_at,
                text=shown[FindingField.new_text] or shown[FindingField.body_text] or "",
            )
            for m, shown in zip(messages, texts, strict=True)
        ],
    )
