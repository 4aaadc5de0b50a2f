from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import service as agents
from app.agents.models import Agent, AgentRole
from app.audit import service as audit
from app.auth import repository
from app.auth import two_factor as two_factor_codes
from app.auth.models import ApiToken, TwoFactor
from app.auth.schemas import (
    LoginChallenge,
    Principal,
    RecoveryCodes,
    Scope,
    SecondFactor,
    SecondFactorLogin,
    TokenCreate,
    TokenCreated,
    TokenRead,
    TwoFactorEnrolment,
    TwoFactorStatus,
)
from app.core import crypto
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Unauthorized
from app.core.security import hash_api_token, new_api_token, token_display_prefix, verify_password
from app.queues import service as queues

ENTITY = "api_token"
_BAD_TOKEN = "The token is unknown, expired or revoked: log in again or create a new token."  # noqa: S105


async def authenticate(
    session: AsyncSession,
    token: str,
    *,
    source_ip: str | None,
    request_id: str | None,
    touch_interval: timedelta,
) -> Principal:
    found = await repository.find_token_with_agent(session, hash_api_token(token))
    now = utcnow()
    if found is None:
        raise Unauthorized(_BAD_TOKEN)
    api_token, agent = found
    if api_token.revoked_at is not None or (api_token.expires_at and api_token.expires_at <= now):
        raise Unauthorized(_BAD_TOKEN)
    if not agent.active:
        raise Unauthorized("This agent is deactivated; ask an admin to reactivate the account.")
    if api_token.last_used_at is None or now - api_token.last_used_at > touch_interval:
        await repository.touch_token(session, api_token.id, now)
    granted = (
        await queues.granted_queue_ids(session, agent.id)
        if agent.role is AgentRole.external
        else frozenset()
    )
    return Principal(
        agent_id=agent.id,
        label=agent.email,
        role=agent.role,
        scopes=frozenset(Scope(s) for s in api_token.scopes),
        token_id=api_token.id,
        granted_queue_ids=granted,
        source_ip=source_ip,
        request_id=request_id,
    )


LOGIN_TOKEN_NAME = "login"  # noqa: S105 - the name of a token, not one


CHALLENGE_TOKEN_NAME = "login-challenge"  # noqa: S105 - the name of a token, not one
CHALLENGE_LIFETIME = timedelta(minutes=5)


async def end_login_sessions(
    session: AsyncSession, actor: Principal, agent_id: int, *, keep_current: bool = True
) -> None:
    """Revoke the agent's login tokens, by default but the one in use (after a password change,
    so a stolen session ends)."""
    await repository.revoke_tokens(
        session,
        agent_id,
        LOGIN_TOKEN_NAME,
        utcnow(),
        keep=actor.token_id if keep_current else None,
    )
    await audit.record(session, actor, "api_token.login_sessions_ended", "agent", agent_id)


async def end_all_login_sessions(session: AsyncSession, actor: Principal) -> None:
    """Log out everywhere, from this session too."""
    await end_login_sessions(session, actor, _own_agent_id(actor), keep_current=False)


async def _issue(
    session: AsyncSession,
    actor: Principal,
    agent: Agent,
    name: str,
    scopes: list[Scope],
    lifetime: timedelta,
    now: datetime,
) -> TokenCreated:
    token = new_api_token()
    api_token = ApiToken(
        agent_id=agent.id,
        name=name,
        prefix=token_display_prefix(token),
        token_hash=hash_api_token(token),
        scopes=sorted({s.value for s in scopes}),
        expires_at=now + lifetime,
    )
    session.add(api_token)
    await session.flush()
    read = TokenRead.model_validate(api_token)
    await audit.record(
        session, actor, "api_token.created", ENTITY, api_token.id, after=audit.snapshot(read)
    )
    return TokenCreated(**read.model_dump(), token=token)


class LoginRefused(Unauthorized):
    """A wrong password or code: the failure it counted must be kept though the login fails."""


class AccountLocked(DomainError):
    status = 429
    title = "Too many requests"
    code = "account_locked"


@dataclass(frozen=True)
class LoginPolicy:
    lifetime: timedelta
    max_failures: int
    lock: timedelta
    require_2fa_roles: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginPolicy:
        return cls(
            lifetime=timedelta(hours=settings.login_token_hours),
            max_failures=settings.login_max_failures,
            lock=timedelta(minutes=settings.login_lock_minutes),
            require_2fa_roles=frozenset(settings.require_2fa_roles),
        )


def _login_actor(agent: Agent | None, source_ip: str | None, request_id: str | None) -> Principal:
    if agent is None:
        return Principal(
            agent_id=None,
            label="login",
            role=AgentRole.admin,
            source_ip=source_ip,
            request_id=request_id,
        )
    return Principal(
        agent_id=agent.id,
        label=agent.email,
        role=agent.role,
        source_ip=source_ip,
        request_id=request_id,
    )


async def _refuse_if_locked(session: AsyncSession, email: str, now: datetime) -> None:
    """Refuse a locked address, holding its row until the attempt commits (see
    ``repository.lock_login_row``)."""
    until = await repository.lock_login_row(session, email, now)
    if until is not None and until > now:
        seconds = max(math.ceil((until - now).total_seconds()), 1)
        raise AccountLocked(
            f"Too many failed logins: this account is locked until {until.isoformat()} "
            f"(in {seconds} seconds), or until an admin unlocks it.",
            locked_until=until,
            retry_after=seconds,
        )


async def _count_failure(
    session: AsyncSession,
    email: str,
    agent: Agent | None,
    policy: LoginPolicy,
    now: datetime,
    *,
    source_ip: str | None,
    request_id: str | None,
) -> None:
    failures = await repository.add_login_failure(session, email, now)
    if failures < policy.max_failures:
        return
    await repository.lock_login(session, email, now + policy.lock, now)
    if agent is not None:
        await audit.record(
            session,
            _login_actor(None, source_ip, request_id),
            "agent.locked",
            "agent",
            agent.id,
            after={"locked_until": (now + policy.lock).isoformat(), "failures": failures},
        )


async def login(
    session: AsyncSession,
    email: str,
    password: str,
    *,
    policy: LoginPolicy,
    source_ip: str | None,
    request_id: str | None,
    now: datetime,
) -> TokenCreated | LoginChallenge:
    """Check the password; a token, or a challenge for the second step when two-factor login is
    on. Failures count per email address, known or not, and lock it after a few in a row."""
    email = email.lower()
    await _refuse_if_locked(session, email, now)
    agent = await agents.find_by_email(session, email)
    valid = await asyncio.to_thread(
        verify_password, password, agent.password_hash if agent else None
    )
    if agent is None or not valid or not agent.active:
        await _count_failure(
            session, email, agent, policy, now, source_ip=source_ip, request_id=request_id
        )
        raise LoginRefused("Wrong email or password.")
    actor = _login_actor(agent, source_ip, request_id)
    two_factor = await repository.get_two_factor(session, agent.id)
    if two_factor is not None and two_factor.confirmed_at is not None:
        # The failure count stays: a password alone must not reset the guessing of codes.
        challenge = await _issue(
            session, actor, agent, CHALLENGE_TOKEN_NAME, [], CHALLENGE_LIFETIME, now
        )
        return LoginChallenge(challenge=challenge.token, expires_at=challenge.expires_at or now)
    await repository.clear_login_failures(session, email)
    scopes = (
        [Scope.two_factor_enrolment]
        if _two_factor_required(agent, policy.require_2fa_roles)
        else [Scope.read, Scope.write]
    )
    return await _issue(session, actor, agent, LOGIN_TOKEN_NAME, scopes, policy.lifetime, now)


async def login_second_factor(
    session: AsyncSession,
    data: SecondFactorLogin,
    *,
    secret_key: str,
    policy: LoginPolicy,
    source_ip: str | None,
    request_id: str | None,
    now: datetime,
) -> TokenCreated:
    """The second step: the challenge from the password step and a code (or recovery code)."""
    found = await repository.find_token_with_agent(session, hash_api_token(data.challenge))
    if found is None or found[0].name != CHALLENGE_TOKEN_NAME or not _live(found[0], now):
        raise Unauthorized("The challenge is unknown or has expired: log in again.")
    challenge, agent = found
    # The address's row first, then the codes' row: the order every login takes them in.
    await _refuse_if_locked(session, agent.email, now)
    two_factor = await repository.get_two_factor(session, agent.id, for_update=True)
    if two_factor is None or two_factor.confirmed_at is None or not agent.active:
        raise Unauthorized("Two-factor login is no longer set up for this agent: log in again.")
    if not _spend(two_factor, data, secret_key, now):
        await _count_failure(
            session, agent.email, agent, policy, now, source_ip=source_ip, request_id=request_id
        )
        raise LoginRefused("Wrong code.")
    challenge.revoked_at = now
    await repository.clear_login_failures(session, agent.email)
    actor = _login_actor(agent, source_ip, request_id)
    if data.recovery_code is not None:
        await audit.record(session, actor, "agent.recovery_code_used", "agent", agent.id)
    return await _issue(
        session, actor, agent, LOGIN_TOKEN_NAME, [Scope.read, Scope.write], policy.lifetime, now
    )


def _two_factor_required(agent: Agent, require_2fa_roles: frozenset[str]) -> bool:
    return agent.require_2fa or agent.role.value in require_2fa_roles


def _live(api_token: ApiToken, now: datetime) -> bool:
    return api_token.revoked_at is None and (
        api_token.expires_at is None or api_token.expires_at > now
    )


def _spend(two_factor: TwoFactor, factor: SecondFactor, secret_key: str, now: datetime) -> bool:
    """Accept the code or recovery code and use it up; False when it is not good (now)."""
    if factor.recovery_code is not None:
        hashed = two_factor_codes.hash_recovery_code(factor.recovery_code)
        if hashed not in two_factor.recovery_code_hashes:
            return False
        two_factor.recovery_code_hashes = [
            h for h in two_factor.recovery_code_hashes if h != hashed
        ]
        return True
    assert factor.code is not None  # SecondFactor holds one of the two
    return _spend_code(two_factor, factor.code, secret_key, now)


def _spend_code(two_factor: TwoFactor, code: str, secret_key: str, now: datetime) -> bool:
    try:
        secret = crypto.decrypt(secret_key, two_factor.secret_encrypted, label=crypto.TOTP_LABEL)
    except crypto.SecretKeyChanged as exc:
        raise Conflict(
            f"{exc} For two-factor login: an admin resets it and the agent enrols again."
        ) from exc
    step = two_factor_codes.accepted_step(secret, code, now, two_factor.last_used_step)
    if step is None:
        return False
    two_factor.last_used_step = step
    return True


def _own_agent_id(actor: Principal) -> int:
    if actor.agent_id is None:
        raise Invalid("Two-factor login and sessions belong to agents; the system has neither.")
    return actor.agent_id


async def two_factor_status(
    session: AsyncSession, actor: Principal, *, require_2fa_roles: frozenset[str]
) -> TwoFactorStatus:
    agent = await agents.get_self(session, actor)
    two_factor = await repository.get_two_factor(session, agent.id)
    enabled = two_factor is not None and two_factor.confirmed_at is not None
    return TwoFactorStatus(
        enabled=enabled,
        pending=two_factor is not None and not enabled,
        required=_two_factor_required(agent, require_2fa_roles),
        recovery_codes_left=len(two_factor.recovery_code_hashes) if two_factor else 0,
    )


async def start_enrolment(
    session: AsyncSession, actor: Principal, *, secret_key: str
) -> TwoFactorEnrolment:
    """A new seed, pending until a code from it confirms it (a pending one is replaced)."""
    agent_id = _own_agent_id(actor)
    two_factor = await repository.get_two_factor(session, agent_id, for_update=True)
    if two_factor is not None and two_factor.confirmed_at is not None:
        raise Conflict("Two-factor login is on already: turn it off first to enrol a new device.")
    secret = two_factor_codes.new_secret()
    encrypted = crypto.encrypt(secret_key, secret, label=crypto.TOTP_LABEL)
    if two_factor is None:
        session.add(TwoFactor(agent_id=agent_id, secret_encrypted=encrypted))
    else:
        two_factor.secret_encrypted = encrypted
        two_factor.last_used_step = None
    await session.flush()
    await audit.record(session, actor, "agent.two_factor_enrolment_started", "agent", agent_id)
    return TwoFactorEnrolment(
        secret=secret, otpauth_uri=two_factor_codes.provisioning_uri(secret, actor.label)
    )


def _new_recovery_codes(two_factor: TwoFactor) -> RecoveryCodes:
    codes = two_factor_codes.new_recovery_codes()
    two_factor.recovery_code_hashes = [two_factor_codes.hash_recovery_code(c) for c in codes]
    return RecoveryCodes(recovery_codes=codes)


async def confirm_enrolment(
    session: AsyncSession, actor: Principal, code: str, *, secret_key: str, now: datetime
) -> RecoveryCodes:
    agent_id = _own_agent_id(actor)
    two_factor = await repository.get_two_factor(session, agent_id, for_update=True)
    if two_factor is None or two_factor.confirmed_at is not None:
        raise Conflict("There is no pending enrolment: start one with POST /auth/2fa/enrol.")
    if not _spend_code(two_factor, code, secret_key, now):
        raise Invalid(
            "The code does not match: check the authenticator app's clock and send the code it "
            "shows now.",
            field="body.code",
        )
    two_factor.confirmed_at = now
    codes = _new_recovery_codes(two_factor)
    await session.flush()
    await audit.record(session, actor, "agent.two_factor_enabled", "agent", agent_id)
    return codes


async def _confirmed_two_factor(session: AsyncSession, agent_id: int) -> TwoFactor:
    two_factor = await repository.get_two_factor(session, agent_id, for_update=True)
    if two_factor is None or two_factor.confirmed_at is None:
        raise Conflict("Two-factor login is not on for you.")
    return two_factor


async def disable_two_factor(
    session: AsyncSession,
    actor: Principal,
    factor: SecondFactor,
    *,
    secret_key: str,
    now: datetime,
) -> None:
    agent_id = _own_agent_id(actor)
    two_factor = await _confirmed_two_factor(session, agent_id)
    if not _spend(two_factor, factor, secret_key, now):
        raise Forbidden("The code is wrong: turning two-factor login off needs a current one.")
    await repository.delete_two_factor(session, agent_id)
    await audit.record(session, actor, "agent.two_factor_disabled", "agent", agent_id)


async def regenerate_recovery_codes(
    session: AsyncSession, actor: Principal, code: str, *, secret_key: str, now: datetime
) -> RecoveryCodes:
    """New recovery codes (the old ones stop working); needs a current code, so a stolen
    session alone cannot take over the account."""
    agent_id = _own_agent_id(actor)
    two_factor = await _confirmed_two_factor(session, agent_id)
    if not _spend_code(two_factor, code, secret_key, now):
        raise Forbidden("The code is wrong: new recovery codes need a current one.")
    codes = _new_recovery_codes(two_factor)
    await session.flush()
    await audit.record(session, actor, "agent.recovery_codes_regenerated", "agent", agent_id)
    return codes


async def reset_two_factor(session: AsyncSession, actor: Principal, agent_id: int) -> None:
    """An admin turns another agent's two-factor login off (a lost phone): they enrol again."""
    actor.require(AgentRole.admin)
    await agents.get_agent(session, actor, agent_id)
    if await repository.delete_two_factor(session, agent_id):
        await audit.record(session, actor, "agent.two_factor_reset", "agent", agent_id)


async def two_factor_now_required(
    session: AsyncSession, actor: Principal, agent_id: int, now: datetime
) -> None:
    """An admin has just required two-factor login of the agent. Not enrolled yet, they lose
    their login sessions, so that the next login is one good only for enrolling; their personal
    API tokens stay, being scoped, listed and revocable by admins one by one."""
    two_factor = await repository.get_two_factor(session, agent_id)
    if two_factor is None or two_factor.confirmed_at is None:
        await repository.revoke_tokens(session, agent_id, LOGIN_TOKEN_NAME, now, keep=None)
    await audit.record(session, actor, "agent.two_factor_required", "agent", agent_id)


async def prove_own_credentials(
    session: AsyncSession,
    agent: Agent,
    current_password: str | None,
    code: str | None,
    *,
    secret_key: str,
    now: datetime,
) -> None:
    """Proof that the agent, not merely a session of theirs, changes their password: the
    password now, and a current code when their two-factor login is on."""
    if agent.password_hash is None:
        raise Forbidden("You have no password yet: an admin sets the first one.")
    if current_password is None:
        raise Invalid("A new password needs your current one.", field="body.current_password")
    if not await asyncio.to_thread(verify_password, current_password, agent.password_hash):
        raise Forbidden("The current password is wrong.")
    two_factor = await repository.get_two_factor(session, agent.id, for_update=True)
    if two_factor is None or two_factor.confirmed_at is None:
        return
    if code is None:
        raise Invalid(
            "Your two-factor login is on: a new password needs a current code too.",
            field="body.code",
        )
    if not _spend_code(two_factor, code, secret_key, now):
        raise Forbidden("The code is wrong: a new password needs a current one.")


async def unlock(session: AsyncSession, actor: Principal, agent_id: int) -> None:
    actor.require(AgentRole.admin)
    agent = await agents.get_agent(session, actor, agent_id)
    if await repository.clear_login_failures(session, agent.email):
        await audit.record(session, actor, "agent.unlocked", "agent", agent_id)


async def list_sessions(session: AsyncSession, actor: Principal, now: datetime) -> list[ApiToken]:
    """Your login tokens still good."""
    return await repository.list_live_tokens(session, _own_agent_id(actor), LOGIN_TOKEN_NAME, now)


async def revoke_agent_tokens(session: AsyncSession, actor: Principal, agent_id: int) -> None:
    """Every token of the agent, logins and personal ones, ends now (an admin's emergency stop)."""
    actor.require(AgentRole.admin)
    await agents.get_agent(session, actor, agent_id)
    await repository.revoke_tokens(session, agent_id, None, utcnow(), keep=None)
    await audit.record(session, actor, "agent.tokens_revoked", "agent", agent_id)


async def create_token(
    session: AsyncSession,
    actor: Principal,
    data: TokenCreate,
    *,
    default_lifetime: timedelta,
    now: datetime,
) -> TokenCreated:
    owner_id = data.agent_id if data.agent_id is not None else actor.agent_id
    if owner_id is None:
        raise Invalid("Say which agent the token is for (agent_id).", field="body.agent_id")
    if owner_id != actor.agent_id:
        actor.require(AgentRole.admin)
    if not set(data.scopes) <= actor.scopes:
        raise Forbidden("A token cannot have scopes that the token creating it lacks.")
    owner = await agents.get_agent(session, actor, owner_id)
    lifetime = timedelta(days=data.expires_in_days) if data.expires_in_days else default_lifetime
    return await _issue(session, actor, owner, data.name, data.scopes, lifetime, now)


async def list_tokens(
    session: AsyncSession, actor: Principal, *, all_agents: bool
) -> list[ApiToken]:
    if all_agents:
        actor.require(AgentRole.admin)
        return await repository.list_tokens(session, None)
    return await repository.list_tokens(session, actor.agent_id)


async def revoke_token(session: AsyncSession, actor: Principal, token_id: int) -> ApiToken:
    api_token = await repository.get_token(session, token_id)
    if api_token is None or (
        api_token.agent_id != actor.agent_id and not actor.is_at_least(AgentRole.admin)
    ):
        raise NotFound(f"Token {token_id} does not exist.")
    if api_token.revoked_at is None:
        api_token.revoked_at = utcnow()
        await session.flush()
        await audit.record(session, actor, "api_token.revoked", ENTITY, api_token.id)
    return api_token
