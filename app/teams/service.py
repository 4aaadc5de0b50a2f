from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import service as agents
from app.agents.models import Agent, AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal
from app.core.errors import NotFound, check_version
from app.core.pagination import SortKey, next_cursor
from app.core.uniqueness import check_free
from app.queues import service as queues
from app.teams import repository
from app.teams.models import Team
from app.teams.schemas import TeamCreate, TeamRead, TeamUpdate
from app.tickets import service as tickets

ENTITY = "team"
_BY_NAME = SortKey(Team.name, Team.id, descending=False)


def _snapshot(team: Team) -> audit.Snapshot:
    return audit.snapshot(TeamRead.model_validate(team))


async def find_team(session: AsyncSession, team_id: int) -> Team | None:
    """The team, without a permission check: for other domains validating a reference."""
    return await repository.get(session, team_id)


async def get_team(session: AsyncSession, actor: Principal, team_id: int) -> Team:
    actor.require(AgentRole.agent)
    team = await repository.get(session, team_id)
    if team is None:
        raise NotFound(f"Team {team_id} does not exist.")
    return team


async def list_teams(
    session: AsyncSession, actor: Principal, *, cursor: str | None, limit: int
) -> tuple[list[Team], str | None]:
    actor.require(AgentRole.agent)
    rows = await repository.list_teams(session, key=_BY_NAME, cursor=cursor, limit=limit)
    return next_cursor(rows, _BY_NAME, limit)


async def _check_name_free(session: AsyncSession, name: str, team_id: int | None) -> None:
    owner_id = await repository.id_by_name(session, name)
    check_free(f"The name {name!r}", owner_id=owner_id, entity=ENTITY, entity_id=team_id)


async def create_team(session: AsyncSession, actor: Principal, data: TeamCreate) -> Team:
    actor.require(AgentRole.admin)
    await _check_name_free(session, data.name, None)
    team = Team(name=data.name, description=data.description)
    session.add(team)
    await session.flush()
    await audit.record(session, actor, "team.created", ENTITY, team.id, after=_snapshot(team))
    return team


async def update_team(
    session: AsyncSession,
    actor: Principal,
    team_id: int,
    changes: TeamUpdate,
    expected_version: int | None,
) -> Team:
    actor.require(AgentRole.admin)
    team = await get_team(session, actor, team_id)
    check_version(team.version, expected_version)
    values = changes.model_dump(exclude_unset=True)
    if "name" in values:
        await _check_name_free(session, values["name"], team.id)
    before = _snapshot(team)
    for field, value in values.items():
        setattr(team, field, value)
    await session.flush()
    await audit.record(
        session, actor, "team.updated", ENTITY, team.id, before=before, after=_snapshot(team)
    )
    return team


async def delete_team(
    session: AsyncSession, actor: Principal, team_id: int, expected_version: int | None
) -> None:
    """Delete the team; its memberships go with it, queues and tickets lose the reference,
    each as a change of that queue or ticket (the foreign keys' SET NULL would be unseen)."""
    actor.require(AgentRole.admin)
    team = await get_team(session, actor, team_id)
    check_version(team.version, expected_version)
    queue_ids = await queues.release_team(session, team.id)
    ticket_ids = await tickets.release_team(session, team.id)
    before = {**_snapshot(team), "queue_ids": queue_ids, "ticket_ids": sorted(ticket_ids)}
    await session.delete(team)
    await session.flush()
    await audit.record(session, actor, "team.deleted", ENTITY, team_id, before=before)


async def list_members(session: AsyncSession, actor: Principal, team_id: int) -> list[Agent]:
    team = await get_team(session, actor, team_id)
    return await repository.list_members(session, team.id)


async def add_member(
    session: AsyncSession, actor: Principal, team_id: int, agent_id: int
) -> list[Agent]:
    """Make the agent a member (idempotent); returns the members."""
    actor.require(AgentRole.admin)
    team = await get_team(session, actor, team_id)
    agent = await agents.get_agent(session, actor, agent_id)
    if await repository.add_member(session, team.id, agent.id):
        await audit.record(
            session, actor, "team.member_added", ENTITY, team.id, after={"agent_id": agent.id}
        )
    return await repository.list_members(session, team.id)


async def remove_member(
    session: AsyncSession, actor: Principal, team_id: int, agent_id: int
) -> None:
    actor.require(AgentRole.admin)
    team = await get_team(session, actor, team_id)
    if not await repository.remove_member(session, team.id, agent_id):
        raise NotFound(f"Agent {agent_id} is not a member of team {team_id}.")
    await audit.record(
        session, actor, "team.member_removed", ENTITY, team.id, before={"agent_id": agent_id}
    )
