"""The export over HTTP: admin only on every table, its parameters checked."""

from __future__ import annotations

import httpx

from app.export.schemas import ExportEntity
from tests.conftest import Caller, MakeAgent


async def test_every_table_is_for_admins_and_checks_cursor_and_limit(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    supervisor = await make_agent("supervisor")
    for entity in ExportEntity:
        url = f"/api/v1/export/{entity.value}"
        refused = await client.get(url, headers=supervisor.headers)
        assert refused.status_code == 403, (entity, refused.text)
        page = await client.get(url, headers=admin.headers, params={"limit": 5000})
        assert page.status_code == 200, (entity, page.text)
        assert page.json()["next_cursor"]

    url = "/api/v1/export/tickets"
    broken = await client.get(url, headers=admin.headers, params={"cursor": "bm90IGEgY3Vyc29y"})
    assert broken.status_code == 422
    assert broken.headers["content-type"] == "application/problem+json"
    assert "cursor" in broken.json()["detail"]
    too_many = await client.get(url, headers=admin.headers, params={"limit": 5001})
    assert too_many.status_code == 422
