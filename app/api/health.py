from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from app.db.migrate import current_revision, head_revision

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    migration: str | None
    expected_migration: str | None


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(request: Request) -> JSONResponse:
    """The database answers and its schema is at the latest migration."""
    expected = head_revision()
    try:
        current = await current_revision(request.app.state.engine)
    except (SQLAlchemyError, OSError) as exc:
        body = Readiness(
            status="unavailable",
            database=f"unreachable: {exc.__class__.__name__}",
            migration=None,
            expected_migration=expected,
        )
        return JSONResponse(body.model_dump(), status_code=503)
    ready = current == expected
    body = Readiness(
        status="ok" if ready else "unavailable",
        database="ok",
        migration=current,
        expected_migration=expected,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
