"""Behaviour every endpoint shares: problem+json, request ids, CORS, health, docs."""

from __future__ import annotations

import httpx

from tests.conftest import Caller


async def test_unknown_route_and_method_are_problem_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    body = missing.json()
    assert body["status"] == 404
    assert body["title"] == "Not found"
    assert body["instance"] == "/api/v1/nothing-here"
    assert body["request_id"] == missing.headers["x-request-id"]

    wrong_method = await client.put("/healthz")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"


async def test_malformed_json_is_a_422_with_pointer(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    response = await client.post(
        "/api/v1/agents",
        headers={**admin.headers, "Content-Type": "application/json"},
        content=b'{"email": ',
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["pointer"].startswith("/body")


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "crm-sync-42"})
    assert echoed.headers["x-request-id"] == "crm-sync-42"
    generated = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["x-request-id"] != "bad id with spaces"
    assert len(generated.headers["x-request-id"]) == 32
    assert generated.headers["x-content-type-options"] == "nosniff"


async def test_cors_allows_configured_spa_origin_only(client: httpx.AsyncClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "authorization,if-match",
    }
    allowed = await client.options(
        "/api/v1/tickets", headers={"Origin": "https://spa.example.test", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://spa.example.test"
    other = await client.options(
        "/api/v1/tickets", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in other.headers


async def test_health_and_docs(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    spec = (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert "/api/v1/tickets" in spec["paths"]
