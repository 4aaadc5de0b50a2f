from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, status

from app.api.deps import AppSettings, CurrentPrincipal, DbSession
from app.api.problems import responses
from app.auth import service
from app.auth.schemas import LoginRequest, TokenCreate, TokenCreated, TokenRead

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/login",
    response_model=TokenCreated,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 422),
)
async def login(
    session: DbSession, settings: AppSettings, body: LoginRequest, request: Request
) -> TokenCreated:
    """Exchange an agent's email and password for a token (read and write scopes)."""
    return await service.login(
        session,
        body.email,
        body.password,
        lifetime=timedelta(hours=settings.login_token_hours),
        source_ip=request.client.host if request.client else None,
        request_id=request.state.request_id,
    )


@router.get("/tokens", response_model=list[TokenRead], responses=responses(401, 403))
async def list_tokens(
    session: DbSession, principal: CurrentPrincipal, all_agents: bool = False
) -> list[TokenRead]:
    """Your tokens; admins may pass `all_agents=true` to see everyone's."""
    tokens = await service.list_tokens(session, principal, all_agents=all_agents)
    return [TokenRead.model_validate(t) for t in tokens]


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 404, 422),
)
async def create_token(
    session: DbSession, settings: AppSettings, principal: CurrentPrincipal, body: TokenCreate
) -> TokenCreated:
    """Create a personal API token; the token is in the response only this once."""
    return await service.create_token(
        session, principal, body, default_lifetime=timedelta(days=settings.token_default_days)
    )


@router.delete("/tokens/{token_id}", response_model=TokenRead, responses=responses(401, 403, 404))
async def revoke_token(session: DbSession, principal: CurrentPrincipal, token_id: int) -> TokenRead:
    """Revoke a token at once; calls with it get 401 from then on."""
    return TokenRead.model_validate(await service.revoke_token(session, principal, token_id))
