"""Configured patterns mask what is kept outside messages too: a ticket's subject and custom
fields, a customer's attributes, a follow-up note, in every read, in every API process."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.privacy import patterns
from app.privacy.models import SensitivePattern
from tests.conftest import Caller

API = "/api/v1"
ACCOUNT = "1234-5678901234"
MASKED = "****-********34"
PATTERN = {"name": "konto", "label": "Kontonummer", "regex": r"\d{4}-\d{10}"}


async def _ticket_with_account_everywhere(client: httpx.AsyncClient, admin: Caller) -> int:
    created = await client.post(
        f"{API}/tickets",
        headers=admin.headers,
        json={
            "subject": f"Konto {ACCOUNT}",
            "customer": {"email": "konto@example.dk"},
            "custom_fields": {"konto": ACCOUNT, "andre": [f"ny {ACCOUNT}"]},
            "message": {"body_text": "Hej"},
        },
    )
    assert created.status_code == 201, created.text
    ticket_id: int = created.json()["id"]
    customer_id = created.json()["customer_id"]
    changed = await client.patch(
        f"{API}/customers/{customer_id}",
        headers=admin.headers,
        json={"attributes": {"konto": ACCOUNT}},
    )
    assert changed.status_code == 200, changed.text
    follow_up = await client.put(
        f"{API}/tickets/{ticket_id}/follow-up",
        headers=admin.headers,
        json={"in": "P3D", "note": f"Ring om {ACCOUNT}"},
    )
    assert follow_up.status_code == 200, follow_up.text
    return ticket_id


async def _shown(client: httpx.AsyncClient, admin: Caller, ticket_id: int) -> dict[str, Any]:
    ticket = await client.get(f"{API}/tickets/{ticket_id}", headers=admin.headers)
    assert ticket.status_code == 200, ticket.text
    customer = await client.get(
        f"{API}/customers/{ticket.json()['customer_id']}", headers=admin.headers
    )
    assert customer.status_code == 200, customer.text
    follow_up = await client.get(f"{API}/tickets/{ticket_id}/follow-up", headers=admin.headers)
    assert follow_up.status_code == 200, follow_up.text
    return {
        "subject": ticket.json()["subject"],
        "custom_fields": ticket.json()["custom_fields"],
        "attributes": customer.json()["attributes"],
        "note": follow_up.json()["note"],
    }


def _all(value: str) -> dict[str, Any]:
    return {
        "subject": f"Konto {value}",
        "custom_fields": {"konto": value, "andre": [f"ny {value}"]},
        "attributes": {"konto": value},
        "note": f"Ring om {value}",
    }


async def test_a_configured_pattern_masks_subjects_fields_attributes_and_notes(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    ticket_id = await _ticket_with_account_everywhere(client, admin)
    assert await _shown(client, admin, ticket_id) == _all(ACCOUNT)

    created = await client.post(f"{API}/privacy/patterns", headers=admin.headers, json=PATTERN)
    assert created.status_code == 201, created.text
    assert await _shown(client, admin, ticket_id) == _all(MASKED)

    disabled = await client.patch(
        f"{API}/privacy/patterns/{created.json()['id']}",
        headers={**admin.headers, "If-Match": created.headers["etag"]},
        json={"enabled": False},
    )
    assert disabled.status_code == 200, disabled.text
    assert await _shown(client, admin, ticket_id) == _all(ACCOUNT)


async def test_a_pattern_another_process_changes_applies_to_the_next_request(
    client: httpx.AsyncClient, admin: Caller, connection: AsyncConnection, session: AsyncSession
) -> None:
    """Another API process is a session of its own writing the pattern table: this process
    hears nothing of it but the table itself, which each request checks."""
    ticket_id = await _ticket_with_account_everywhere(client, admin)
    assert await _shown(client, admin, ticket_id) == _all(ACCOUNT)
    other_process = async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )

    async with other_process() as other:
        other.add(SensitivePattern(**PATTERN, enabled=True))
        await other.commit()
    assert await _shown(client, admin, ticket_id) == _all(MASKED)

    async with other_process() as other:
        await other.execute(update(SensitivePattern).values(enabled=False))
        await other.commit()
    assert await _shown(client, admin, ticket_id) == _all(ACCOUNT)

    # A process started after the change loads the patterns on its first request.
    async with other_process() as other:
        await other.execute(update(SensitivePattern).values(enabled=True))
        await other.commit()
    patterns.forget()
    assert await _shown(client, admin, ticket_id) == _all(MASKED)


async def test_a_slow_configured_pattern_masks_the_whole_subject(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    slow = {"name": "slow", "label": "Slow", "regex": r"(a+)+b"}
    created = await client.post(f"{API}/privacy/patterns", headers=admin.headers, json=slow)
    assert created.status_code == 201, created.text
    subject = "a" * 900
    ticket = await client.post(
        f"{API}/tickets",
        headers=admin.headers,
        json={
            "subject": subject,
            "customer": {"email": "slow@example.dk"},
            "message": {"body_text": "Hej"},
        },
    )
    assert ticket.status_code == 201, ticket.text
    shown = await client.get(f"{API}/tickets/{ticket.json()['id']}", headers=admin.headers)
    assert shown.json()["subject"] == "*" * 898 + "aa"
