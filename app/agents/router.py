from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.agents import service
from app.agents.models import AgentRole
from app.agents.schemas import AgentCreate, AgentRead, AgentSelfUpdate, AgentUpdate
from app.api.deps import AppSettings, CurrentPrincipal, Cursor, DbSession, IfMatch, PageLimit
from app.api.etag import created_with_etag, read_with_etag
from app.api.problems import responses
from app.core.clock import utcnow
from app.core.pagination import Page

router = APIRouter(prefix="/agents", tags=["agents"])


@router.get("", response_model=Page[AgentRead], responses=responses(401, 403, 422))
async def list_agents(
    session: DbSession,
    principal: CurrentPrincipal,
    limit: PageLimit,
    cursor: Cursor = None,
    role: AgentRole | None = None,
    active: bool | None = None,
) -> Page[AgentRead]:
    """List agents (agent role or higher)."""
    rows, next_cursor = await service.list_agents(
        session, principal, role=role, active=active, cursor=cursor, limit=limit
    )
    return Page(items=[AgentRead.model_validate(a) for a in rows], next_cursor=next_cursor)


@router.post(
    "",
    response_model=AgentRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 422),
)
async def create_agent(
    session: DbSession,
    settings: AppSettings,
    principal: CurrentPrincipal,
    body: AgentCreate,
    request: Request,
    response: Response,
) -> AgentRead:
    """Create an agent (admin)."""
    agent = await service.create_agent(
        session, principal, body, password_min_length=settings.password_min_length
    )
    return created_with_etag(request, response, AgentRead, agent)


@router.get("/me", response_model=AgentRead, responses=responses(401, 404))
async def get_me(session: DbSession, principal: CurrentPrincipal, response: Response) -> AgentRead:
    """The calling agent's own profile."""
    agent = await service.get_self(session, principal)
    return read_with_etag(response, AgentRead, agent)


@router.patch("/me", response_model=AgentRead, responses=responses(401, 403, 404, 412, 422))
async def update_me(
    session: DbSession,
    settings: AppSettings,
    principal: CurrentPrincipal,
    body: AgentSelfUpdate,
    if_match: IfMatch,
    response: Response,
) -> AgentRead:
    """Change your own name, languages, password, or set yourself available/away. A new
    password needs `current_password`, and `code` when your two-factor login is on; your other
    login sessions end."""
    agent = await service.update_self(
        session,
        principal,
        body,
        if_match,
        password_min_length=settings.password_min_length,
        secret_key=settings.resolved_secret_key(),
        now=utcnow(),
    )
    return read_with_etag(response, AgentRead, agent)


@router.get("/{agent_id}", response_model=AgentRead, responses=responses(401, 403, 404))
async def get_agent(
    session: DbSession, principal: CurrentPrincipal, agent_id: int, response: Response
) -> AgentRead:
    agent = await service.get_agent(session, principal, agent_id)
    return read_with_etag(response, AgentRead, agent)


@router.patch("/{agent_id}", response_model=AgentRead, responses=responses(401, 403, 404, 412, 422))
async def update_agent(
    session: DbSession,
    settings: AppSettings,
    principal: CurrentPrincipal,
    agent_id: int,
    body: AgentUpdate,
    if_match: IfMatch,
    response: Response,
) -> AgentRead:
    """Change an agent (admin); deactivate with `active: false`, reset a password (ends their
    login sessions), or require two-factor login with `require_2fa: true`."""
    agent = await service.update_agent(
        session,
        principal,
        agent_id,
        body,
        if_match,
        password_min_length=settings.password_min_length,
        now=utcnow(),
    )
    return read_with_etag(response, AgentRead, agent)
