"""Security headers on API and documentation answers; secrets stored encrypted."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import crypto
from app.core.config import Settings
from tests.auth.helpers import changed_settings
from tests.conftest import Caller


async def test_api_and_docs_answers_carry_security_headers(
    client: httpx.AsyncClient, admin: Caller, app: FastAPI
) -> None:
    api = await client.get("/api/v1/tickets", headers=admin.headers)
    refused = await client.get("/api/v1/tickets")
    docs = await client.get("/docs")
    assert docs.status_code == 200
    for response in (api, refused, docs):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "strict-transport-security" not in response.headers
    assert api.headers["content-security-policy"].startswith("default-src 'none';")
    assert "script-src" not in api.headers["content-security-policy"]
    # Swagger UI's script and styles come from its CDN.
    assert "https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    assert "cdn.jsdelivr.net" in docs.text

    with changed_settings(app, hsts_max_age_seconds=31536000):
        secured = await client.get("/api/v1/tickets", headers=admin.headers)
    assert secured.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_mailbox_passwords_are_stored_encrypted(
    client: httpx.AsyncClient, admin: Caller, session: AsyncSession, settings: Settings
) -> None:
    created = await client.post(
        "/api/v1/mailboxes",
        headers=admin.headers,
        json={
            "name": "Kundeservice",
            "imap_host": "imap.example.dk",
            "imap_security": "tls",
            "username": "kundeservice@example.dk",
            "auth_method": "password",
            "password": "rødgrød med fløde",
            "addresses": ["kundeservice@example.dk"],
        },
    )
    assert created.status_code == 201, created.text
    assert "password" not in created.json()
    stored = await session.scalar(
        text("SELECT password_encrypted FROM mailboxes WHERE id = :id"),
        {"id": created.json()["id"]},
    )
    assert stored is not None
    assert "rødgrød" not in stored
    assert crypto.decrypt(settings.resolved_secret_key(), stored) == "rødgrød med fløde"
