"""The functions the tickets domain calls, used directly (no HTTP)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.auth.schemas import Principal, system_principal
from app.core.errors import NotFound
from app.queues import service
from app.queues.schemas import QueueCreate


def _external(*granted: int) -> Principal:
    return Principal(
        agent_id=None,
        label="partner@example.test",
        role=AgentRole.external,
        granted_queue_ids=frozenset(granted),
    )


async def test_get_and_find_queue(session: AsyncSession) -> None:
    system = system_principal("test")
    queue = await service.create_queue(session, system, QueueCreate(name="Tromsø"))
    missing_id = queue.id + 1000

    assert (await service.get_queue(session, system, queue.id)).name == "Tromsø"
    assert (await service.get_queue(session, _external(queue.id), queue.id)).id == queue.id
    with pytest.raises(NotFound):
        await service.get_queue(session, _external(), queue.id)
    with pytest.raises(NotFound):
        await service.get_queue(session, system, missing_id)

    found = await service.find_queue(session, queue.id)
    assert found is not None
    assert found.name == "Tromsø"
    assert await service.find_queue(session, missing_id) is None
