from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.agents.models import ROLE_RANK, AgentRole
from app.core.errors import Forbidden
from app.core.types import EmailAddress


class Scope(StrEnum):
    read = "read"
    write = "write"
    # A login token of an agent who must enrol in two-factor login first: good for that only.
    two_factor_enrolment = "2fa_enrolment"


@dataclass(frozen=True)
class Principal:
    """Who is acting: an agent through a token, or the system itself (CLI, workers)."""

    agent_id: int | None
    label: str
    role: AgentRole
    scopes: frozenset[Scope] = frozenset({Scope.read, Scope.write})
    token_id: int | None = None
    granted_queue_ids: frozenset[int] = field(default_factory=frozenset)
    source_ip: str | None = None
    request_id: str | None = None

    def is_at_least(self, role: AgentRole) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    def require(self, role: AgentRole) -> None:
        if not self.is_at_least(role):
            raise Forbidden(
                f"This needs the {role.value} role or higher; you are {self.role.value}."
            )

    @property
    def is_external(self) -> bool:
        return self.role is AgentRole.external

    def can_see_queue(self, queue_id: int | None) -> bool:
        return not self.is_external or (queue_id is not None and queue_id in self.granted_queue_ids)


def system_principal(label: str) -> Principal:
    return Principal(agent_id=None, label=label, role=AgentRole.admin)


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    password: str = Field(min_length=1, max_length=1024)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["CRM sync"])
    scopes: list[Scope] = Field(default_factory=lambda: [Scope.read, Scope.write], min_length=1)
    expires_in_days: int | None = Field(
        default=None, ge=1, le=3650, description="Omit for the service default (90 days)."
    )
    agent_id: int | None = Field(
        default=None, description="Admins may create a token for another agent (an integration)."
    )


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    agent_id: int
    name: str
    prefix: str = Field(description="The first characters of the token, to tell tokens apart.")
    scopes: list[Scope]
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class TokenCreated(TokenRead):
    token: str = Field(description="The token itself; shown only this once, store it safely.")


TotpCode = Annotated[str, Field(pattern=r"^\d{6}$", examples=["492039"])]


class LoginChallenge(BaseModel):
    """The password was right and two-factor login is on: send a code with this challenge to
    `POST /api/v1/auth/login/2fa`."""

    challenge: str = Field(description="Good for one second step, for a few minutes.")
    expires_at: datetime
    methods: list[str] = Field(default_factory=lambda: ["code", "recovery_code"])


class SecondFactor(BaseModel):
    """A current authenticator code or one of the recovery codes."""

    model_config = ConfigDict(extra="forbid")

    code: TotpCode | None = None
    recovery_code: str | None = Field(default=None, max_length=64, examples=["k7m2p-x9qrt"])

    @model_validator(mode="after")
    def _one_of_them(self) -> SecondFactor:
        if (self.code is None) == (self.recovery_code is None):
            raise ValueError("Send either `code` or `recovery_code`.")
        return self


class SecondFactorLogin(SecondFactor):
    challenge: str = Field(min_length=1, max_length=200)


class CodeConfirmation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: TotpCode


class TwoFactorEnrolment(BaseModel):
    secret: str = Field(description="Base32 seed, for authenticator apps that cannot scan.")
    otpauth_uri: str = Field(description="Show as a QR code for the authenticator app to scan.")


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(
        description="Each works once instead of a code; shown only now, store them safely."
    )


class TwoFactorStatus(BaseModel):
    enabled: bool
    pending: bool = Field(description="Enrolment started but not yet confirmed with a code.")
    required: bool = Field(description="Your role must log in with two factors.")
    recovery_codes_left: int
