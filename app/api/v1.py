"""Every domain router under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from app.agents.router import router as agents
from app.audit.router import router as audit
from app.auth.router import router as auth

api_v1 = APIRouter(prefix="/api/v1")
for domain_router in (
    auth,
    agents,
    audit,
):
    api_v1.include_router(domain_router)
