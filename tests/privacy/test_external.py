"""What an outside partner (the external role) sees, endpoint by endpoint: tickets of granted
queues only, public messages only, values always masked, customers reduced to what each
queue's grant allows, never a customer record, another ticket of the customer, or a reveal."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Caller, MakeAgent
from tests.helpers import audit_events

API = "/api/v1"
CPR = "010190-1234"


async def _world(
    client: httpx.AsyncClient, admin: Caller, partner: Caller
) -> dict[str, dict[str, Any]]:
    """Four queues of one customer's tickets: granted showing none, name, name and email,
    and one not granted. Each ticket's first message holds a CPR number; each has a note."""
    customer = await client.post(
        f"{API}/customers",
        headers=admin.headers,
        json={
            "name": "Åse Kjærgård",
            "emails": ["aase@example.dk"],
            "phone": "+45 12 34 56 78",
            "customer_number": "K-1042",
        },
    )
    assert customer.status_code == 201, customer.text
    world: dict[str, dict[str, Any]] = {}
    for grant in ("none", "name", "name_and_email", None):
        queue = await client.post(
            f"{API}/queues", headers=admin.headers, json={"name": f"Kø {grant}"}
        )
        if grant is not None:
            granted = await client.put(
                f"{API}/queues/{queue.json()['id']}/grants/{partner.id}",
                headers=admin.headers,
                json={"customer_fields": grant},
            )
            assert granted.status_code == 200, granted.text
        ticket = await client.post(
            f"{API}/tickets",
            headers=admin.headers,
            json={
                "subject": f"CPR {CPR}",
                "queue_id": queue.json()["id"],
                "customer": {"id": customer.json()["id"]},
                "message": {"body_text": f"Mit CPR er {CPR}"},
            },
        )
        assert ticket.status_code == 201, ticket.text
        note = await client.post(
            f"{API}/tickets/{ticket.json()['id']}/messages",
            headers=admin.headers,
            json={"body_text": "Kun internt: kunden er svær", "public": False},
        )
        assert note.status_code == 201, note.text
        world[str(grant)] = ticket.json()
    return world


async def test_grants_record_what_partners_see_of_customers(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    partner = await make_agent("external")
    world = await _world(client, admin, partner)
    queue_id = world["name"]["queue_id"]
    events = await audit_events(
        client, admin, entity_type="queue", entity_id=str(queue_id), action="queue.grant_added"
    )
    assert [e["after"] for e in events] == [{"agent_id": partner.id, "customer_fields": "name"}]
    again = await client.put(
        f"{API}/queues/{queue_id}/grants/{partner.id}",
        headers=admin.headers,
        json={"customer_fields": "name"},
    )
    assert again.json() == [partner.id]
    unchanged = await audit_events(
        client, admin, entity_type="queue", entity_id=str(queue_id), action="queue.grant_added"
    )
    assert len(unchanged) == 1
    bad = await client.put(
        f"{API}/queues/{queue_id}/grants/{partner.id}",
        headers=admin.headers,
        json={"customer_fields": "everything"},
    )
    assert bad.status_code == 422


async def test_ticket_lists_and_reads_show_granted_queues_with_masked_values(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    partner = await make_agent("external")
    world = await _world(client, admin, partner)
    listed = await client.get(f"{API}/tickets", headers=partner.headers)
    assert {t["id"] for t in listed.json()["items"]} == {
        world[g]["id"] for g in ("none", "name", "name_and_email")
    }
    assert {t["subject"] for t in listed.json()["items"]} == {"CPR ******-**34"}
    same_customer = await client.get(
        f"{API}/tickets",
        headers=partner.headers,
        params={"customer_id": world["None"]["customer_id"]},
    )
    assert world["None"]["id"] not in {t["id"] for t in same_customer.json()["items"]}
    hidden = await client.get(f"{API}/tickets/{world['None']['id']}", headers=partner.headers)
    assert hidden.status_code == 404
    hidden_messages = await client.get(
        f"{API}/tickets/{world['None']['id']}/messages", headers=partner.headers
    )
    assert hidden_messages.status_code == 404
    assert CPR not in listed.text


async def test_messages_are_public_masked_and_addressed_as_the_grant_allows(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    partner = await make_agent("external")
    world = await _world(client, admin, partner)
    for grant, address in (
        ("none", None),
        ("name", None),
        ("name_and_email", "aase@example.dk"),
    ):
        response = await client.get(
            f"{API}/tickets/{world[grant]['id']}/messages", headers=partner.headers
        )
        [message] = response.json()["items"]
        assert message["public"] is True
        assert message["body_text"] == "Mit CPR er ******-**34"
        assert [(f["field"], f["masked"]) for f in message["findings"]] == [
            ("subject", "******-**34"),
            ("body_text", "******-**34"),
        ]
        assert message["from_address"] == address
        assert "Kun internt" not in response.text
        assert CPR not in response.text
        included = await client.get(
            f"{API}/tickets/{world[grant]['id']}",
            headers=partner.headers,
            params={"include": "messages"},
        )
        [side_loaded] = included.json()["included"]["messages"][str(world[grant]["id"])]
        assert side_loaded["from_address"] == address
        assert side_loaded["body_text"] == "Mit CPR er ******-**34"

    # Staff see the addresses and the notes, with the values masked just the same.
    staff = await client.get(f"{API}/tickets/{world['none']['id']}/messages", headers=admin.headers)
    first, note = staff.json()["items"]
    assert first["from_address"] == "aase@example.dk"
    assert first["body_text"] == "Mit CPR er ******-**34"
    assert note["public"] is False


async def test_side_loaded_customers_are_reduced_to_the_grant(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    partner = await make_agent("external")
    world = await _world(client, admin, partner)
    customer_id = str(world["none"]["customer_id"])
    seen: dict[str, Any] = {}
    for grant in ("none", "name", "name_and_email"):
        response = await client.get(
            f"{API}/tickets/{world[grant]['id']}",
            headers=partner.headers,
            params={"include": "customer"},
        )
        assert response.status_code == 200, response.text
        seen[grant] = response.json()["included"]["customers"]
    assert seen["none"] == {}
    name_only = seen["name"][customer_id]
    assert (name_only["name"], name_only["emails"]) == ("Åse Kjærgård", [])
    with_email = seen["name_and_email"][customer_id]
    assert (with_email["name"], with_email["emails"]) == ("Åse Kjærgård", ["aase@example.dk"])
    for reduced in (name_only, with_email):
        assert reduced["phone"] is None
        assert reduced["customer_number"] is None
    page = await client.get(
        f"{API}/tickets", headers=partner.headers, params={"include": "customer"}
    )
    assert page.json()["included"]["customers"][customer_id]["emails"] == ["aase@example.dk"]
    assert "K-1042" not in page.text
    assert "+45 12 34 56 78" not in page.text

    without_fields = await make_agent("external")
    await client.put(
        f"{API}/queues/{world['name']['queue_id']}/grants/{without_fields.id}",
        headers=admin.headers,
    )
    refused = await client.get(
        f"{API}/tickets/{world['name']['id']}",
        headers=without_fields.headers,
        params={"include": "customer"},
    )
    assert refused.status_code == 403


async def test_no_customer_records_history_or_reveal_for_partners(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent, session: AsyncSession
) -> None:
    partner = await make_agent("external")
    world = await _world(client, admin, partner)
    customer_id = world["name_and_email"]["customer_id"]
    for path in (
        f"{API}/customers",
        f"{API}/customers/{customer_id}",
        f"{API}/customers/{customer_id}/tickets",
    ):
        response = await client.get(path, headers=partner.headers)
        assert response.status_code == 403, path
    messages = await client.get(
        f"{API}/tickets/{world['name_and_email']['id']}/messages", headers=partner.headers
    )
    [message] = messages.json()["items"]
    reveal = await client.post(
        f"{API}/messages/{message['id']}/reveal",
        headers=partner.headers,
        json={"reason": "Skal bruge det til sagen"},
    )
    assert reveal.status_code == 403
    assert await audit_events(client, admin, action="message.revealed") == []


async def test_follow_up_notes_are_internal_and_masked_for_everyone(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    partner = await make_agent("external")
    world = await _world(client, admin, partner)
    ticket_id = world["name_and_email"]["id"]
    url = f"{API}/tickets/{ticket_id}/follow-up"
    set_ = await client.put(
        url, headers=admin.headers, json={"in": "P1D", "note": f"Ring om CPR {CPR}"}
    )
    assert set_.status_code == 200, set_.text
    assert set_.json()["note"] == "Ring om CPR ******-**34"
    assert (await client.get(url, headers=partner.headers)).status_code == 403
    for params in ({"include": "follow_up"}, {"include": "assignee,follow_up"}):
        one = await client.get(f"{API}/tickets/{ticket_id}", headers=partner.headers, params=params)
        assert one.status_code == 403, one.text
        listed = await client.get(f"{API}/tickets", headers=partner.headers, params=params)
        assert listed.status_code == 403, listed.text
    read = await client.get(url, headers=admin.headers)
    assert read.json()["note"] == "Ring om CPR ******-**34"
    included = await client.get(
        f"{API}/tickets/{ticket_id}", headers=admin.headers, params={"include": "follow_up"}
    )
    assert included.json()["included"]["follow_ups"][str(ticket_id)]["note"] == (
        "Ring om CPR ******-**34"
    )


async def test_a_partner_opening_a_ticket_for_a_known_address_learns_nothing_of_the_customer(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    partner = await make_agent("external")
    known = await client.post(
        f"{API}/customers",
        headers=admin.headers,
        json={"name": "Åse Kjærgård", "emails": ["aase@example.dk", "privat@example.dk"]},
    )
    assert known.status_code == 201, known.text
    queue = await client.post(f"{API}/queues", headers=admin.headers, json={"name": "Partner"})
    granted = await client.put(
        f"{API}/queues/{queue.json()['id']}/grants/{partner.id}",
        headers=admin.headers,
        json={"customer_fields": "name_and_email"},
    )
    assert granted.status_code == 200, granted.text

    async def open_ticket(email: str) -> dict[str, Any]:
        created = await client.post(
            f"{API}/tickets",
            headers=partner.headers,
            json={
                "subject": "Opkald",
                "queue_id": queue.json()["id"],
                "customer": {"email": email, "name": "Som oplyst"},
                "message": {"body_text": "Kunden ringede"},
            },
        )
        assert created.status_code == 201, created.text
        ticket: dict[str, Any] = created.json()
        return ticket

    ticket = await open_ticket("privat@example.dk")
    assert ticket["customer_id"] == known.json()["id"]
    seen = await client.get(
        f"{API}/tickets/{ticket['id']}",
        headers=partner.headers,
        params={"include": "customer,messages"},
    )
    assert seen.status_code == 200, seen.text
    assert seen.json()["included"]["customers"] == {}
    [message] = seen.json()["included"]["messages"][str(ticket["id"])]
    assert message["from_address"] is None
    listed = await client.get(
        f"{API}/tickets", headers=partner.headers, params={"include": "customer"}
    )
    assert "Åse" not in listed.text
    assert "aase@example.dk" not in listed.text
    staff = await client.get(
        f"{API}/tickets/{ticket['id']}", headers=admin.headers, params={"include": "customer"}
    )
    assert staff.json()["included"]["customers"][str(known.json()["id"])]["name"] == "Åse Kjærgård"

    new = await open_ticket("ny@example.dk")
    shown = await client.get(
        f"{API}/tickets/{new['id']}", headers=partner.headers, params={"include": "customer"}
    )
    customer = shown.json()["included"]["customers"][str(new["customer_id"])]
    assert (customer["name"], customer["emails"]) == ("Som oplyst", ["ny@example.dk"])
