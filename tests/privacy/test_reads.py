"""Reads of personal data are audited: the raw mail (unmasked evidence, admins only, with a
reason), a ticket's messages, a customer's history and search results, attachment files."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Caller, MakeAgent
from tests.helpers import audit_events, build_mail
from tests.ingest.test_service import ingest_raw

API = "/api/v1"
CPR = "010190-1234"


async def test_the_raw_mail_is_for_admins_with_a_reason_unmasked_and_audited(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller, make_agent: MakeAgent
) -> None:
    mail = build_mail(subject="Hej", body=f"Mit CPR er {CPR}")
    outcome = await ingest_raw(session, mail)
    url = f"{API}/ingest/inbound/{outcome.inbound_id}/raw"
    reason = {"reason": "The customer disputes what they sent"}
    supervisor = await make_agent("supervisor")
    assert (await client.get(url, headers=supervisor.headers, params=reason)).status_code == 403
    for missing in ({}, {"reason": ""}, {"reason": "   "}):
        refused = await client.get(url, headers=admin.headers, params=missing)
        assert refused.status_code == 422, missing
    assert await audit_events(client, admin, action="inbound_mail.raw_viewed") == []

    raw = await client.get(url, headers=admin.headers, params=reason)
    assert raw.status_code == 200, raw.text
    assert raw.content == mail
    [event] = await audit_events(client, admin, action="inbound_mail.raw_viewed")
    assert (event["entity_type"], event["entity_id"]) == ("inbound_mail", str(outcome.inbound_id))
    assert event["actor_agent_id"] == admin.id
    assert event["after"] == reason
