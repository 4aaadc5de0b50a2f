"""The functions other domains call, used directly (no HTTP)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.schemas import system_principal
from app.teams import service
from app.teams.schemas import TeamCreate


async def test_find_team(session: AsyncSession) -> None:
    team = await service.create_team(
        session, system_principal("test"), TeamCreate(name="Ærø færgeteam")
    )
    found = await service.find_team(session, team.id)
    assert found is not None
    assert found.name == "Ærø færgeteam"
    assert await service.find_team(session, team.id + 1000) is None
