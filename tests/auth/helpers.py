"""Shared steps of the account tests: settings changed for one test, audit actions, codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

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
