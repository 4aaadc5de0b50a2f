from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.api.deps import CurrentPrincipal, Cursor, DbSession, IfMatch, PageLimit
from app.api.etag import created_with_etag, read_with_etag
from app.api.problems import responses
from app.core.pagination import Page
from app.teams import service
from app.teams.schemas import TeamCreate, TeamMemberRead, TeamRead, TeamUpdate

router = APIRouter(prefix="/teams", tags=["teams"])


@router.get("", response_model=Page[TeamRead], responses=responses(401, 403, 422))
async def list_teams(
    session: DbSession, principal: CurrentPrincipal, limit: PageLimit, cursor: Cursor = None
) -> Page[TeamRead]:
    """List teams by name (agent role or higher)."""
    rows, next_cursor = await service.list_teams(session, principal, cursor=cursor, limit=limit)
    return Page(items=[TeamRead.model_validate(t) for t in rows], next_cursor=next_cursor)


@router.post(
    "",
    response_model=TeamRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 422),
)
async def create_team(
    session: DbSession,
    principal: CurrentPrincipal,
    body: TeamCreate,
    request: Request,
    response: Response,
) -> TeamRead:
    """Create a team (admin)."""
    team = await service.create_team(session, principal, body)
    return created_with_etag(request, response, TeamRead, team)


@router.get("/{team_id}", response_model=TeamRead, responses=responses(401, 403, 404, 422))
async def get_team(
    session: DbSession, principal: CurrentPrincipal, team_id: int, response: Response
) -> TeamRead:
    team = await service.get_team(session, principal, team_id)
    return read_with_etag(response, TeamRead, team)


@router.patch(
    "/{team_id}", response_model=TeamRead, responses=responses(401, 403, 404, 409, 412, 422)
)
async def update_team(
    session: DbSession,
    principal: CurrentPrincipal,
    team_id: int,
    body: TeamUpdate,
    if_match: IfMatch,
    response: Response,
) -> TeamRead:
    """Rename a team or change its description (admin)."""
    team = await service.update_team(session, principal, team_id, body, if_match)
    return read_with_etag(response, TeamRead, team)


@router.delete(
    "/{team_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 412, 422),
)
async def delete_team(
    session: DbSession, principal: CurrentPrincipal, team_id: int, if_match: IfMatch
) -> None:
    """Delete a team (admin); its queues and tickets keep existing, without a team."""
    await service.delete_team(session, principal, team_id, if_match)


@router.get(
    "/{team_id}/members",
    response_model=list[TeamMemberRead],
    responses=responses(401, 403, 404, 422),
)
async def list_members(
    session: DbSession, principal: CurrentPrincipal, team_id: int
) -> list[TeamMemberRead]:
    """The team's members by name (agent role or higher)."""
    members = await service.list_members(session, principal, team_id)
    return [TeamMemberRead.model_validate(a) for a in members]


@router.put(
    "/{team_id}/members/{agent_id}",
    response_model=list[TeamMemberRead],
    responses=responses(401, 403, 404, 422),
)
async def add_member(
    session: DbSession, principal: CurrentPrincipal, team_id: int, agent_id: int
) -> list[TeamMemberRead]:
    """Add an agent to the team (admin; adding a member again changes nothing).
    Returns the members."""
    members = await service.add_member(session, principal, team_id, agent_id)
    return [TeamMemberRead.model_validate(a) for a in members]


@router.delete(
    "/{team_id}/members/{agent_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 422),
)
async def remove_member(
    session: DbSession, principal: CurrentPrincipal, team_id: int, agent_id: int
) -> None:
    """Remove an agent from the team (admin)."""
    await service.remove_member(session, principal, team_id, agent_id)
