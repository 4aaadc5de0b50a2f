from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.db.migrate import head_revision
from app.main import create_app


async def test_ready_when_database_is_migrated(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    app = create_app(Settings(database_url=database_url, data_dir=tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "migration": head_revision(),
        "expected_migration": head_revision(),
    }


async def test_not_ready_when_database_is_unreachable(tmp_path: Path) -> None:
    app = create_app(
        Settings(database_url="postgresql://nobody@127.0.0.1:1/none", data_dir=tmp_path)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"].startswith("unreachable")
