"""Small helpers the domain tests share."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.customers.models import Customer
from app.tickets.models import Channel, Ticket, TicketPriority, TicketStatus
from tests.conftest import Caller


async def audit_events(
    client: httpx.AsyncClient, admin: Caller, **params: str
) -> list[dict[str, Any]]:
    """The audit events matching ``params`` (``entity_type``, ``entity_id``, ``action``),
    newest first."""
    response = await client.get("/api/v1/audit-events", headers=admin.headers, params=params)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["items"]
    return events


async def add_ticket(
    session: AsyncSession, *, customer_id: int | None = None, **fields: Any
) -> int:
    """Insert an open ticket directly (when the ticket API is not what a test is about), for a
    new customer unless ``customer_id`` is given; ``fields`` set more columns. Returns its id."""
    if customer_id is None:
        customer = Customer(name="Ærlig Kunde")
        session.add(customer)
        await session.flush()
        customer_id = customer.id
    fields.setdefault("subject", "Spørgsmål")
    fields.setdefault("status", TicketStatus.open)
    fields.setdefault("priority", TicketPriority.normal)
    fields.setdefault("channel", Channel.email)
    ticket = Ticket(customer_id=customer_id, **fields)
    session.add(ticket)
    await session.flush()
    return ticket.id


def build_mail(
    *,
    subject: str = "Fakturaen er forkert",
    sender: str = "Søren Ærø <soren@example.dk>",
    to: str = "support@firma.dk",
    body: str = "Hej, min faktura er forkert.\n\nVenlig hilsen\nSøren",
    message_id: str = "<m1@example.dk>",
    date: datetime = datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
    headers: dict[str, str] | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = message_id
    mail["Date"] = format_datetime(date)
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(body)
    if attachment:
        mail.add_attachment(
            attachment[1], maintype="application", subtype="pdf", filename=attachment[0]
        )
    return mail.as_bytes(policy=SMTP)
