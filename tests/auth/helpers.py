"""Shared steps of the account tests: settings changed for one test, audit actions, codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pyotp
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.core.clock import utcnow


@contextmanager
def changed_settings(app: FastAPI, **changes: Any) -> Iterator[None]:
    original = app.state.settings
    app.state.settings = original.model_copy(update=changes)
    try:
        yield
    finally:
        app.state.settings = original


async def audit_actions(session: AsyncSession, agent_id: int) -> list[str]:
    return list(
        await session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.entity_type == "agent", AuditEvent.entity_id == str(agent_id))
            .order_by(AuditEvent.id)
        )
    )


def code(secret: str, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows now, or that many 30-second steps later."""
    return pyotp.TOTP(secret).at(utcnow() + timedelta(seconds=30 * steps_ahead))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def enrol(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, list[str]]:
    """Enrol and confirm with the current code; the seed and the recovery codes."""
    started = await client.post("/api/v1/auth/2fa/enrol", headers=headers)
    assert started.status_code == 201, started.text
    secret: str = started.json()["secret"]
    confirmed = await client.post(
        "/api/v1/auth/2fa/confirm", headers=headers, json={"code": code(secret)}
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"]
