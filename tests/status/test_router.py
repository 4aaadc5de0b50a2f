"""The customer's status page: public by its token, showing only what the customer may see."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.queues.models import Queue
from app.tickets.models import Ticket
from tests.conftest import MakeAgent
from tests.outbound.conftest import make_mailbox
from tests.smtpserver import SmtpSink


async def new_ticket(
    client: httpx.AsyncClient,
    session: AsyncSession,
    make_agent: MakeAgent,
    sink: SmtpSink,
    settings: Settings,
) -> Ticket:
    """A ticket with the customer's message, an internal note and a reply."""
    mailbox = await make_mailbox(session, sink, settings.resolved_secret_key())
    queue = Queue(name="Levering", mailbox_id=mailbox.id)
    session.add(queue)
    await session.flush()
    agent = await make_agent("agent")
    created = await client.post(
        "/api/v1/tickets",
        headers=agent.headers,
        json={
            "subject": "Leveringen <script>alert(1)</script> er forsinket",
            "customer": {"email": "aase@example.no", "name": "Åse Øvrebø"},
            "message": {"body_text": "Hvor er pakken min?"},
            "queue_id": queue.id,
        },
    )
    assert created.status_code == 201, created.text
    ticket_id = created.json()["id"]
    for body in (
        {"body_text": "Internt: kunden har ringt tre gange", "public": False},
        {"body_text": "Pakken er sendt i dag. Venlig hilsen, Åsa"},
    ):
        response = await client.post(
            f"/api/v1/tickets/{ticket_id}/messages", headers=agent.headers, json=body
        )
        assert response.status_code == 201, response.text
    ticket = await session.get(Ticket, ticket_id)
    assert ticket is not None
    return ticket


async def test_the_page_shows_status_and_public_messages_only(
    client: httpx.AsyncClient,
    session: AsyncSession,
    make_agent: MakeAgent,
    smtp_sink: SmtpSink,
    settings: Settings,
) -> None:
    ticket = await new_ticket(client, session, make_agent, smtp_sink, settings)
    assert len(ticket.status_token) == 64

    page = await client.get(f"/status/{ticket.status_token}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert "Hvor er pakken min?" in html
    assert "Venlig hilsen, Åsa" in html
    assert "kunden har ringt" not in html
    assert "&lt;script&gt;" in html
    assert "<script>" not in html
    assert "aase@example.no" not in html
    assert f"[#{ticket.number}]" in html

    json = await client.get(
        f"/status/{ticket.status_token}", headers={"Accept": "application/json"}
    )
    data = json.json()
    assert data["status"] == "open"
    assert data["status_text"] == "We are working on it"
    assert [m["author"] for m in data["messages"]] == ["customer", "support"]


async def test_a_wrong_token_finds_nothing(client: httpx.AsyncClient) -> None:
    response = await client.get("/status/" + "0" * 64)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "Check the link" in response.json()["detail"]


async def test_a_merged_tickets_link_shows_the_ticket_it_joined(
    client: httpx.AsyncClient,
    session: AsyncSession,
    make_agent: MakeAgent,
    smtp_sink: SmtpSink,
    settings: Settings,
) -> None:
    kept = await new_ticket(client, session, make_agent, smtp_sink, settings)
    agent = await make_agent("agent")
    other = await client.post(
        "/api/v1/tickets",
        headers=agent.headers,
        json={
            "subject": "Samme pakke",
            "customer": {"email": "aase@example.no"},
            "message": {"body_text": "Igen: hvor er pakken?"},
        },
    )
    merged = await client.post(
        f"/api/v1/tickets/{other.json()['id']}/merge",
        headers=agent.headers,
        json={"into_ticket_id": kept.id},
    )
    assert merged.status_code == 200, merged.text
    gone = await session.get(Ticket, other.json()["id"])
    assert gone is not None
    data = (
        await client.get(f"/status/{gone.status_token}", headers={"Accept": "application/json"})
    ).json()
    assert data["ticket_number"] == kept.number


async def test_the_page_masks_identity_and_card_numbers(
    client: httpx.AsyncClient, session: AsyncSession, make_agent: MakeAgent
) -> None:
    agent = await make_agent("agent")
    created = await client.post(
        "/api/v1/tickets",
        headers=agent.headers,
        json={
            "subject": "Mit CPR 010190-1234",
            "customer": {"email": "aase@example.no"},
            "message": {"body_text": "CPR 010190-1234, kort 4111 1111 1111 1111"},
        },
    )
    assert created.status_code == 201, created.text
    ticket = await session.get(Ticket, created.json()["id"])
    assert ticket is not None

    page = await client.get(f"/status/{ticket.status_token}")
    json = await client.get(
        f"/status/{ticket.status_token}", headers={"Accept": "application/json"}
    )
    for text in (page.text, json.text):
        assert "010190-1234" not in text
        assert "4111 1111 1111 1111" not in text
    assert json.json()["subject"] == "Mit CPR ******-**34"
    assert [m["text"] for m in json.json()["messages"]] == [
        "CPR ******-**34, kort **** **** **** 1111"
    ]
    assert "Mit CPR ******-**34" in page.text
    assert "kort **** **** **** 1111" in page.text
