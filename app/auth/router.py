from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.deps import (
    AppSettings,
    CurrentPrincipal,
    DbSession,
    EnrollingPrincipal,
    get_sessionmaker,
)
from app.api.problems import responses
from app.auth import service
from app.auth.schemas import (
    CodeConfirmation,
    LoginChallenge,
    LoginRequest,
    RecoveryCodes,
    SecondFactor,
    SecondFactorLogin,
    TokenCreate,
    TokenCreated,
    TokenRead,
    TwoFactorEnrolment,
    TwoFactorStatus,
)
from app.core.clock import utcnow

router = APIRouter(prefix="/auth", tags=["auth"])


Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]


@asynccontextmanager
async def _login_attempt(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A login's unit of work, committed also when the login is refused: the failure it
    counted is what locks out a guesser, so it must outlive the refusal."""
    async with maker() as session:
        try:
            yield session
        except (service.LoginRefused, service.AccountLocked):
            await session.commit()
            raise
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


@router.post(
    "/login",
    response_model=TokenCreated | LoginChallenge,
    status_code=status.HTTP_201_CREATED,
    responses={
        status.HTTP_202_ACCEPTED: {
            "model": LoginChallenge,
            "description": "Two-factor login is on: send a code with the challenge.",
        },
        **responses(401, 422, 429),
    },
)
async def login(
    maker: Sessions, settings: AppSettings, body: LoginRequest, request: Request, response: Response
) -> TokenCreated | LoginChallenge:
    """Exchange an agent's email and password for a token (read and write scopes); with
    two-factor login on, for a challenge (202) to finish at `POST /auth/login/2fa`. Agents whose
    role must use two factors and who have not enrolled get a token good only for enrolling.
    Failed logins in a row lock the address for a while (429)."""
    async with _login_attempt(maker) as session:
        result = await service.login(
            session,
            body.email,
            body.password,
            policy=service.LoginPolicy.from_settings(settings),
            source_ip=request.client.host if request.client else None,
            request_id=request.state.request_id,
            now=utcnow(),
        )
    if isinstance(result, LoginChallenge):
        response.status_code = status.HTTP_202_ACCEPTED
    return result


@router.post(
    "/login/2fa",
    response_model=TokenCreated,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 422, 429),
)
async def login_second_factor(
    maker: Sessions, settings: AppSettings, body: SecondFactorLogin, request: Request
) -> TokenCreated:
    """Finish a two-factor login: the challenge and a current code, or a recovery code (each
    works once). Wrong codes count as failed logins."""
    async with _login_attempt(maker) as session:
        return await service.login_second_factor(
            session,
            body,
            secret_key=settings.resolved_secret_key(),
            policy=service.LoginPolicy.from_settings(settings),
            source_ip=request.client.host if request.client else None,
            request_id=request.state.request_id,
            now=utcnow(),
        )


@router.get("/2fa", response_model=TwoFactorStatus, responses=responses(401, 403, 422))
async def two_factor_status(
    session: DbSession, settings: AppSettings, principal: EnrollingPrincipal
) -> TwoFactorStatus:
    """Whether your two-factor login is on, pending or required, and recovery codes left."""
    return await service.two_factor_status(
        session, principal, require_2fa_roles=frozenset(settings.require_2fa_roles)
    )


@router.post(
    "/2fa/enrol",
    response_model=TwoFactorEnrolment,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 422),
)
async def enrol_two_factor(
    session: DbSession, settings: AppSettings, principal: EnrollingPrincipal
) -> TwoFactorEnrolment:
    """Start enrolling an authenticator app: scan the `otpauth://` address, then confirm with
    a code. Pending until confirmed; starting again replaces a pending seed."""
    return await service.start_enrolment(
        session, principal, secret_key=settings.resolved_secret_key()
    )


@router.post("/2fa/confirm", response_model=RecoveryCodes, responses=responses(401, 403, 409, 422))
async def confirm_two_factor(
    session: DbSession, settings: AppSettings, principal: EnrollingPrincipal, body: CodeConfirmation
) -> RecoveryCodes:
    """Turn two-factor login on with a code from the app; the answer holds ten recovery codes,
    shown only this once. A token limited to enrolling stays so: log in again."""
    return await service.confirm_enrolment(
        session, principal, body.code, secret_key=settings.resolved_secret_key(), now=utcnow()
    )


@router.delete(
    "/2fa", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403, 409, 422)
)
async def disable_two_factor(
    session: DbSession, settings: AppSettings, principal: CurrentPrincipal, body: SecondFactor
) -> None:
    """Turn your two-factor login off, with a current code or a recovery code."""
    await service.disable_two_factor(
        session, principal, body, secret_key=settings.resolved_secret_key(), now=utcnow()
    )


@router.post(
    "/2fa/recovery-codes", response_model=RecoveryCodes, responses=responses(401, 403, 409, 422)
)
async def regenerate_recovery_codes(
    session: DbSession, settings: AppSettings, principal: CurrentPrincipal, body: CodeConfirmation
) -> RecoveryCodes:
    """Ten new recovery codes for a current code; the old ones stop working."""
    return await service.regenerate_recovery_codes(
        session, principal, body.code, secret_key=settings.resolved_secret_key(), now=utcnow()
    )


@router.get("/sessions", response_model=list[TokenRead], responses=responses(401, 403, 422))
async def list_sessions(session: DbSession, principal: CurrentPrincipal) -> list[TokenRead]:
    """Your login tokens that are still good (one per login)."""
    tokens = await service.list_sessions(session, principal, utcnow())
    return [TokenRead.model_validate(t) for t in tokens]


@router.delete(
    "/sessions", status_code=status.HTTP_204_NO_CONTENT, responses=responses(401, 403, 422)
)
async def end_sessions(session: DbSession, principal: CurrentPrincipal) -> None:
    """Log out everywhere: every login token of yours ends, this one too; personal API tokens
    stay."""
    await service.end_all_login_sessions(session, principal)


@router.delete(
    "/agents/{agent_id}/2fa",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 422),
)
async def reset_two_factor(session: DbSession, principal: CurrentPrincipal, agent_id: int) -> None:
    """Turn an agent's two-factor login off (admin), e.g. after a lost phone: they enrol again."""
    await service.reset_two_factor(session, principal, agent_id)


@router.post(
    "/agents/{agent_id}/unlock",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 422),
)
async def unlock_agent(session: DbSession, principal: CurrentPrincipal, agent_id: int) -> None:
    """Lift a lock after failed logins (admin)."""
    await service.unlock(session, principal, agent_id)


@router.delete(
    "/agents/{agent_id}/tokens",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 422),
)
async def revoke_agent_tokens(
    session: DbSession, principal: CurrentPrincipal, agent_id: int
) -> None:
    """Revoke every token of an agent at once, logins and personal ones (admin)."""
    await service.revoke_agent_tokens(session, principal, agent_id)


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
        session,
        principal,
        body,
        default_lifetime=timedelta(days=settings.token_default_days),
        now=utcnow(),
    )


@router.delete("/tokens/{token_id}", response_model=TokenRead, responses=responses(401, 403, 404))
async def revoke_token(session: DbSession, principal: CurrentPrincipal, token_id: int) -> TokenRead:
    """Revoke a token at once; calls with it get 401 from then on."""
    return TokenRead.model_validate(await service.revoke_token(session, principal, token_id))
