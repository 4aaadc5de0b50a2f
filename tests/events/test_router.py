"""The feed and the event types over HTTP."""

from __future__ import annotations

import httpx

from app.events.schemas import EVENT_TYPES
from tests.conftest import Caller, MakeAgent


async def test_the_types_are_published_with_version_and_schema(
    client: httpx.AsyncClient, make_agent: MakeAgent
) -> None:
    agent = await make_agent("agent")
    response = await client.get("/api/v1/events/types", headers=agent.headers)
    assert response.status_code == 200, response.text
    published = {item["type"]: item for item in response.json()}
    assert set(published) == {
        "ticket.created",
        "ticket.updated",
        "ticket.deleted",
        "ticket.assigned",
        "ticket.status_changed",
        "ticket.sla_breached",
        "ticket.escalated",
        "ticket.follow_up_due",
        "message.created",
        "customer.created",
        "customer.updated",
        "customer.merged",
        "customer.erased",
        "customer.deleted",
        "organisation.created",
        "organisation.updated",
        "organisation.deleted",
        "mail.quarantined",
        "outbound.failed",
        "routing.notify",
        "webhook.disabled",
        "bulk_job.finished",
    }
    updated = published["ticket.updated"]
    assert updated["version"] == 1
    assert updated["description"] == EVENT_TYPES["ticket.updated"].__doc__
    schema = updated["json_schema"]
    assert schema["properties"]["schema_version"]["const"] == 1
    assert {"ticket_id", "number", "changes"} <= set(schema["required"])
    change = schema["$defs"]["FieldChange"]["properties"]
    assert set(change) == {"from", "to"}
    assert "body_text" not in published["message.created"]["json_schema"]["properties"]


async def test_the_feed_always_gives_a_cursor_and_checks_its_parameters(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    url = "/api/v1/events"
    first = await client.get(url, headers=admin.headers, params={"type": "ticket.created"})
    assert first.status_code == 200, first.text
    cursor = first.json()["next_cursor"]
    assert cursor
    again = await client.get(
        url,
        headers=admin.headers,
        params={"after": cursor, "type": ["ticket.created", "ticket.updated"]},
    )
    assert again.status_code == 200
    # Nothing new since (unless another transaction just ended): the same cursor back.
    assert again.json()["items"] or again.json()["next_cursor"] == cursor

    unknown = await client.get(url, headers=admin.headers, params={"type": "ticket.lost"})
    assert unknown.status_code == 422
    assert "ticket.lost" in unknown.json()["detail"]
    broken = await client.get(url, headers=admin.headers, params={"after": "???"})
    assert broken.status_code == 422
