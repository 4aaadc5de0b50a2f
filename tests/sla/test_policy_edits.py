"""Editing a policy's escalation steps while its targets run: a step keeps its identity (its
moment and metrics) wherever the list moves it, so no step fires twice or never, and a new
earlier step is looked at on time. Editing its targets recounts the running ones at once, so
a lengthened target is not breached on its old due time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.outbound.service import OutboundConfig
from app.sla.models import SlaPolicy
from app.sla.scheduler import run_sla_pass
from app.tickets.models import Ticket
from tests.conftest import Caller
from tests.sla.test_scheduler import T0, TARGETS, _ticket

TAG_AT_50 = {"at_percent": 50, "actions": [{"type": "add_tags", "tags": ["halvvejs"]}]}
TAG_AT_80 = {"at_percent": 80, "actions": [{"type": "add_tags", "tags": ["sla-risiko"]}]}
RAISE_AT_100 = {
    "at_percent": 100,
    "metrics": ["first_response"],
    "actions": [{"type": "raise_priority"}],
}


class World:
    def __init__(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        connection: AsyncConnection,
        admin: Caller,
        settings: Settings,
    ) -> None:
        self.client, self.session, self.admin = client, session, admin
        self.maker = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        self.config = OutboundConfig.from_settings(settings)

    async def ticket_on(self, steps: list[dict[str, Any]]) -> tuple[int, int]:
        policy = SlaPolicy(name="Guld", targets=TARGETS, escalations=steps, at_risk_percent=80)
        self.session.add(policy)
        await self.session.flush()
        ticket = await _ticket(self.session, policy)
        await self.session.commit()
        return policy.id, ticket.id

    async def pass_at(self, minutes: int) -> int:
        return await run_sla_pass(self.maker, T0 + timedelta(minutes=minutes), config=self.config)

    async def edit_steps(self, policy_id: int, steps: list[dict[str, Any]]) -> None:
        url = f"/api/v1/sla-policies/{policy_id}"
        etag = (await self.client.get(url, headers=self.admin.headers)).headers["etag"]
        response = await self.client.patch(
            url, headers={**self.admin.headers, "If-Match": etag}, json={"escalations": steps}
        )
        assert response.status_code == 200, response.text

    async def edit_targets(self, policy_id: int, targets: dict[str, Any]) -> None:
        url = f"/api/v1/sla-policies/{policy_id}"
        etag = (await self.client.get(url, headers=self.admin.headers)).headers["etag"]
        response = await self.client.patch(
            url, headers={**self.admin.headers, "If-Match": etag}, json={"targets": targets}
        )
        assert response.status_code == 200, response.text

    async def target(self, ticket_id: int) -> dict[str, Any]:
        response = await self.client.get(
            f"/api/v1/tickets/{ticket_id}/sla", headers=self.admin.headers
        )
        [target] = response.json()["targets"]
        body: dict[str, Any] = target
        return body

    async def fired(self, ticket_id: int) -> list[tuple[int, str]]:
        response = await self.client.get(
            f"/api/v1/tickets/{ticket_id}/sla", headers=self.admin.headers
        )
        [target] = response.json()["targets"]
        assert target["escalation_level"] == len(target["escalations"])
        return [(e["at_percent"], e["step_key"]) for e in target["escalations"]]

    async def ticket(self, ticket_id: int) -> dict[str, Any]:
        response = await self.client.get(f"/api/v1/tickets/{ticket_id}", headers=self.admin.headers)
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def world(
    client: httpx.AsyncClient,
    session: AsyncSession,
    connection: AsyncConnection,
    admin: Caller,
    settings: Settings,
) -> World:
    return World(client, session, connection, admin, settings)


async def test_a_step_inserted_in_front_fires_and_the_fired_one_does_not_fire_again(
    world: World,
) -> None:
    policy_id, ticket_id = await world.ticket_on([TAG_AT_80, RAISE_AT_100])
    assert await world.pass_at(49) == 1
    assert await world.fired(ticket_id) == [(80, "80:*")]

    await world.edit_steps(policy_id, [TAG_AT_50, TAG_AT_80, RAISE_AT_100])
    assert await world.pass_at(50) == 1

    assert await world.fired(ticket_id) == [(80, "80:*"), (50, "50:*")]
    assert (await world.ticket(ticket_id))["tags"] == ["halvvejs", "sla-risiko"]


async def test_removing_a_step_leaves_the_breach_step_to_fire(world: World) -> None:
    policy_id, ticket_id = await world.ticket_on([TAG_AT_50, TAG_AT_80, RAISE_AT_100])
    assert await world.pass_at(49) == 1
    await world.edit_steps(policy_id, [TAG_AT_80, RAISE_AT_100])

    assert await world.pass_at(61) == 1

    assert await world.fired(ticket_id) == [
        (50, "50:*"),
        (80, "80:*"),
        (100, "100:first_response"),
    ]
    assert (await world.ticket(ticket_id))["priority"] == "high"


async def test_a_new_earlier_step_fires_on_time(world: World) -> None:
    policy_id, ticket_id = await world.ticket_on([RAISE_AT_100])
    await world.edit_steps(policy_id, [TAG_AT_50, RAISE_AT_100])

    assert await world.pass_at(31) == 1

    assert await world.fired(ticket_id) == [(50, "50:*")]
    assert (await world.ticket(ticket_id))["tags"] == ["halvvejs"]


async def test_two_steps_with_the_same_moment_and_targets_are_refused(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    response = await client.post(
        "/api/v1/sla-policies",
        headers=admin.headers,
        json={"name": "Dobbelt", "escalations": [TAG_AT_80, TAG_AT_80]},
    )
    assert response.status_code == 422
    assert "same at_percent and metrics" in response.text


LONGER = {"normal": {"first_response": 600}, "high": {"first_response": 600}}
"""Ten hours instead of one."""
LONGER_DUE = "2026-03-02T19:00:00Z"


async def test_a_lengthened_target_is_recounted_at_once_and_not_breached_on_its_old_time(
    world: World,
) -> None:
    policy_id, ticket_id = await world.ticket_on([TAG_AT_80, RAISE_AT_100])
    await world.edit_targets(policy_id, LONGER)

    assert await world.pass_at(61) == 0, "the next look moved to the 80 % step, at 8 hours"

    target = await world.target(ticket_id)
    assert (target["target_seconds"], target["due_at"]) == (36000, LONGER_DUE)
    assert target["breached_at"] is None
    assert target["escalations"] == []
    stored = await world.session.get(Ticket, ticket_id, populate_existing=True)
    assert stored is not None
    assert (stored.sla_due_at, stored.sla_breached) == (T0 + timedelta(hours=10), False)

    assert await world.pass_at(481) == 1
    assert await world.fired(ticket_id) == [(80, "80:*")]
    assert await world.pass_at(601) == 1
    target = await world.target(ticket_id)
    assert target["breached_at"] == LONGER_DUE


async def test_the_pass_counts_a_target_from_the_policy_as_it_is_now(world: World) -> None:
    """Should a target still be counted from an older version of its policy (an edit that
    bypassed ``update_policy``), the pass recounts it before deciding it is breached."""
    policy_id, ticket_id = await world.ticket_on([RAISE_AT_100])
    await world.session.execute(
        update(SlaPolicy).where(SlaPolicy.id == policy_id).values(targets=LONGER)
    )
    await world.session.commit()

    assert await world.pass_at(61) == 1

    target = await world.target(ticket_id)
    assert (target["due_at"], target["breached_at"]) == (LONGER_DUE, None)
    assert target["escalations"] == []
    assert await world.pass_at(601) == 1
    assert (await world.target(ticket_id))["breached_at"] == LONGER_DUE
