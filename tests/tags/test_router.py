from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.customers.models import Customer
from app.tickets.models import Ticket
from tests.conftest import Caller, MakeAgent
from tests.helpers import add_ticket, audit_events

TAGS = "/api/v1/tags"

MakeTicket = Callable[..., Awaitable[int]]
LAST_EDIT = datetime(2024, 5, 17, 12, 0, tzinfo=UTC)


@pytest.fixture
async def make_ticket(session: AsyncSession) -> MakeTicket:
    """``await make_ticket("vip", "økonomi")``: a ticket with these tags; returns its id.
    (Rows are inserted directly: the ticket API is not what these tests are about.)"""
    customer = Customer(name="Ærlig Kunde")
    session.add(customer)
    await session.flush()

    async def make(*tags: str) -> int:
        # In the past: the test's transaction has one now(), so a bump would be invisible.
        return await add_ticket(
            session, customer_id=customer.id, tags=list(tags), updated_at=LAST_EDIT
        )

    return make


async def _tags_of(session: AsyncSession, ticket_id: int) -> list[str]:
    tags = await session.scalar(select(Ticket.tags).where(Ticket.id == ticket_id))
    assert tags is not None
    return tags


async def _stamp(session: AsyncSession, ticket_id: int) -> tuple[int, datetime]:
    row = (
        await session.execute(
            select(Ticket.version, Ticket.updated_at).where(Ticket.id == ticket_id)
        )
    ).one()
    return row[0], row[1]


async def test_lists_tags_by_use_then_name(
    client: httpx.AsyncClient, make_agent: MakeAgent, make_ticket: MakeTicket
) -> None:
    await make_ticket("vip", "økonomi")
    await make_ticket("vip", "beta")
    await make_ticket("vip", "alfa", "økonomi")
    # A repeated tag still counts the ticket once.
    await make_ticket("gentaget", "gentaget")
    await make_ticket()
    agent = await make_agent(AgentRole.agent)

    response = await client.get(TAGS, headers=agent.headers)
    assert response.status_code == 200, response.text
    assert response.json() == [
        {"name": "vip", "ticket_count": 3},
        {"name": "økonomi", "ticket_count": 2},
        {"name": "alfa", "ticket_count": 1},
        {"name": "beta", "ticket_count": 1},
        {"name": "gentaget", "ticket_count": 1},
    ]

    limited = await client.get(TAGS, headers=agent.headers, params={"limit": 2})
    assert [t["name"] for t in limited.json()] == ["vip", "økonomi"]


async def test_prefix_filter_ignores_case_and_wildcards(
    client: httpx.AsyncClient, admin: Caller, make_ticket: MakeTicket
) -> None:
    await make_ticket("Vip-kunde", "vip", "øresund", "ørsted", "v_x", "vaax", "overvip")

    async def names(q: str) -> list[str]:
        response = await client.get(TAGS, headers=admin.headers, params={"q": q})
        assert response.status_code == 200, response.text
        return [t["name"] for t in response.json()]

    assert await names("VI") == ["Vip-kunde", "vip"]
    assert await names("øre") == ["øresund"]
    # `_` and `%` are plain characters here, not LIKE wildcards.
    assert await names("v_") == ["v_x"]
    assert await names("%") == []


async def test_reading_tags_is_for_internal_agents(
    client: httpx.AsyncClient, make_agent: MakeAgent, make_ticket: MakeTicket
) -> None:
    await make_ticket("hemmelig")
    external = await make_agent(AgentRole.external)
    assert (await client.get(TAGS, headers=external.headers)).status_code == 403
    assert (await client.get(TAGS)).status_code == 401
    too_many = await client.get(TAGS, headers=(await make_agent()).headers, params={"limit": 0})
    assert too_many.status_code == 422
    assert [e["pointer"] for e in too_many.json()["errors"]] == ["/query/limit"]


async def test_delete_removes_the_tag_from_every_ticket(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    make_agent: MakeAgent,
    make_ticket: MakeTicket,
) -> None:
    first = await make_ticket("vip", "økonomi")
    second = await make_ticket("økonomi", "vip", "haster")
    untouched = await make_ticket("haster")
    stamps = {tid: await _stamp(session, tid) for tid in (first, second, untouched)}

    agent = await make_agent(AgentRole.agent)
    assert (await client.delete(f"{TAGS}/vip", headers=agent.headers)).status_code == 403

    supervisor = await make_agent(AgentRole.supervisor)
    deleted = await client.delete(f"{TAGS}/vip", headers=supervisor.headers)
    assert deleted.status_code == 204, deleted.text

    assert await _tags_of(session, first) == ["økonomi"]
    assert await _tags_of(session, second) == ["økonomi", "haster"]
    assert await _tags_of(session, untouched) == ["haster"]
    # A tag clean-up changes the tickets that had the tag: their ETag and updated_at move, so
    # clients holding an old version get 412 and incremental syncs see the change.
    after = {tid: await _stamp(session, tid) for tid in stamps}
    for changed in (first, second):
        assert after[changed][0] == stamps[changed][0] + 1
        assert after[changed][1] > stamps[changed][1]
    assert after[untouched] == stamps[untouched]

    again = await client.delete(f"{TAGS}/vip", headers=supervisor.headers)
    assert again.status_code == 404
    assert again.headers["content-type"] == "application/problem+json"

    events = await audit_events(client, admin, entity_type="tag")
    assert [(e["action"], e["entity_id"], e["after"]) for e in events] == [
        ("tag.deleted", "vip", {"tickets_changed": 2})
    ]
    assert events[0]["actor_label"] == supervisor.email


async def test_rename(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    make_agent: MakeAgent,
    make_ticket: MakeTicket,
) -> None:
    plain = await make_ticket("a", "fragt", "b")
    both = await make_ticket("fragt", "forsendelse-æøå")
    other = await make_ticket("Fragt")
    stamp = await _stamp(session, plain)
    url = f"{TAGS}/fragt/rename"

    agent = await make_agent(AgentRole.agent)
    forbidden = await client.post(url, headers=agent.headers, json={"new_name": "x"})
    assert forbidden.status_code == 403

    renamed = await client.post(url, headers=admin.headers, json={"new_name": "forsendelse-æøå"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json() == {
        "old_name": "fragt",
        "new_name": "forsendelse-æøå",
        "tickets_changed": 2,
    }
    # The new name takes the old one's place; a ticket that had both keeps one.
    assert await _tags_of(session, plain) == ["a", "forsendelse-æøå", "b"]
    assert await _tags_of(session, both) == ["forsendelse-æøå"]
    # Tags are case-sensitive: "Fragt" is another tag.
    assert await _tags_of(session, other) == ["Fragt"]
    version, updated_at = await _stamp(session, plain)
    assert version == stamp[0] + 1
    assert updated_at > stamp[1]

    listed = await client.get(TAGS, headers=admin.headers, params={"q": "forsendelse"})
    assert listed.json() == [{"name": "forsendelse-æøå", "ticket_count": 2}]

    assert (
        await client.post(url, headers=admin.headers, json={"new_name": "y"})
    ).status_code == 404
    events = await audit_events(client, admin, entity_type="tag")
    assert [(e["action"], e["entity_id"], e["after"]) for e in events] == [
        ("tag.renamed", "fragt", {"new_name": "forsendelse-æøå", "tickets_changed": 2})
    ]


async def test_rename_validation(
    client: httpx.AsyncClient, admin: Caller, make_ticket: MakeTicket
) -> None:
    await make_ticket("retur")
    url = f"{TAGS}/retur/rename"
    for body in ({"new_name": "to ord"}, {"new_name": ""}, {"new_name": "a,b"}, {}):
        response = await client.post(url, headers=admin.headers, json=body)
        assert response.status_code == 422, body
        assert [e["pointer"] for e in response.json()["errors"]] == ["/body/new_name"]
    same = await client.post(url, headers=admin.headers, json={"new_name": "retur"})
    assert same.status_code == 422
    assert [e["pointer"] for e in same.json()["errors"]] == ["/body/new_name"]
    typo = await client.post(url, headers=admin.headers, json={"new_name": "ny", "nwe": "x"})
    assert typo.status_code == 422
    assert [e["pointer"] for e in typo.json()["errors"]] == ["/body/nwe"]


async def test_a_tag_with_a_slash(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller, make_ticket: MakeTicket
) -> None:
    ticket = await make_ticket("faktura/kredit")
    renamed = await client.post(
        f"{TAGS}/faktura%2Fkredit/rename", headers=admin.headers, json={"new_name": "kredit/nota"}
    )
    assert renamed.status_code == 200, renamed.text
    assert await _tags_of(session, ticket) == ["kredit/nota"]
    assert (await client.delete(f"{TAGS}/kredit/nota", headers=admin.headers)).status_code == 204
    assert await _tags_of(session, ticket) == []
