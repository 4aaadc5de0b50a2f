"""Every endpoint, called by every role: allowed roles succeed, the others get 403.

Each case builds its own small world through the API (as an admin), then makes one call as
the role under test. External partners are granted the world's queue, so ticket calls succeed
for them too; what they must not reach is everything outside their queues.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy.ext.asyncio import AsyncSession

from app.events.models import Event
from app.ingest import service as ingest
from app.tickets.models import LinkKind, TicketLink
from app.webhooks.models import WebhookDelivery, WebhookDeliveryStatus
from tests.conftest import Caller, MakeAgent
from tests.helpers import build_mail

ROLES = ("admin", "supervisor", "agent", "external")
RANK = {"external": 0, "agent": 1, "supervisor": 2, "admin": 3}


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    min_role: str
    body: dict[str, Any] | None = None
    params: dict[str, Any] | None = None


CASES = [
    Case("GET", "/auth/tokens", "external"),
    Case("POST", "/auth/tokens", "external", {"name": "skript"}),
    Case("DELETE", "/auth/tokens/{own_token}", "external"),
    Case("GET", "/auth/2fa", "external"),
    Case("POST", "/auth/2fa/enrol", "external"),
    Case("GET", "/auth/sessions", "external"),
    Case("DELETE", "/auth/sessions", "external"),
    Case("DELETE", "/auth/agents/{colleague}/2fa", "admin"),
    Case("POST", "/auth/agents/{colleague}/unlock", "admin"),
    Case("DELETE", "/auth/agents/{colleague}/tokens", "admin"),
    Case("GET", "/tickets", "external"),
    Case(
        "POST",
        "/tickets",
        "external",
        {
            "subject": "Ny sag",
            "queue_id": "{queue}",
            "customer": {"email": "ny@example.no"},
            "message": {"body_text": "Hei"},
        },
    ),
    Case("GET", "/tickets/{ticket}", "external"),
    Case("PATCH", "/tickets/{ticket}", "external", {"priority": "high"}),
    Case("GET", "/tickets/{ticket}/messages", "external"),
    Case("POST", "/tickets/{ticket}/messages", "external", {"body_text": "Svar"}),
    Case("GET", "/attachments/{attachment}", "external"),
    Case("GET", "/attachments/{attachment}/content", "external"),
    Case("GET", "/customers", "agent"),
    Case("POST", "/customers", "agent", {"name": "Åke", "emails": ["ake@example.se"]}),
    Case("GET", "/customers/lookup", "agent", params={"email": "kari@nordlys.no"}),
    Case("GET", "/customers/{customer}", "agent"),
    Case("PATCH", "/customers/{customer}", "agent", {"phone": "+47 22 00 00 00"}),
    Case("DELETE", "/customers/{spare_customer}", "supervisor"),
    Case("GET", "/customers/{customer}/tickets", "agent"),
    Case("GET", "/customers/{customer}/export", "supervisor", params={"reason": "Indsigt"}),
    Case("POST", "/customers/{spare_customer}/erase", "admin", {"reason": "Anmodning"}),
    Case("GET", "/retention/preview", "admin"),
    Case(
        "POST",
        "/retention/queues/{queue}/confirm",
        "admin",
        {"retention_months": 120, "retention_action": "anonymise"},
    ),
    Case("GET", "/customers/by-external/crm/S-1", "agent"),
    Case("PUT", "/customers/by-external/crm/K-1", "agent", {"emails": ["ny.kunde@example.no"]}),
    Case(
        "POST",
        "/customers/{spare_customer}/merge",
        "supervisor",
        {"into_customer_id": "{customer}"},
    ),
    Case("GET", "/organisations", "agent"),
    Case("POST", "/organisations", "supervisor", {"name": "Fjord AS", "domains": ["fjord.no"]}),
    Case("GET", "/organisations/lookup", "agent", params={"domain": "nordlys.no"}),
    Case("GET", "/organisations/{organisation}", "agent"),
    Case("GET", "/organisations/by-external/erp/O-1", "agent"),
    Case("PUT", "/organisations/by-external/erp/N-1", "supervisor", {"name": "Fjord AS"}),
    Case("PATCH", "/organisations/{organisation}", "supervisor", {"name": "Nordlys ASA"}),
    Case("DELETE", "/organisations/{organisation}", "supervisor"),
    Case("GET", "/queues", "external"),
    Case("POST", "/queues", "admin", {"name": "Reklamationer"}),
    Case("GET", "/queues/{queue}", "external"),
    Case("PATCH", "/queues/{queue}", "admin", {"description": "Første linje"}),
    Case("DELETE", "/queues/{queue}", "admin"),
    Case("GET", "/queues/{queue}/grants", "agent"),
    Case("PUT", "/queues/{queue}/grants/{partner}", "admin"),
    Case("DELETE", "/queues/{queue}/grants/{partner}", "admin"),
    Case("GET", "/agents", "agent"),
    Case("POST", "/agents", "admin", {"email": "ny.agent@example.dk", "name": "Ny Agent"}),
    Case("GET", "/agents/me", "external"),
    Case("PATCH", "/agents/me", "external", {"available": False}),
    Case("GET", "/agents/{colleague}", "agent"),
    Case("PATCH", "/agents/{colleague}", "admin", {"capacity": 3}),
    Case("GET", "/teams", "agent"),
    Case("POST", "/teams", "admin", {"name": "Andenlinje"}),
    Case("GET", "/teams/{team}", "agent"),
    Case("PATCH", "/teams/{team}", "admin", {"description": "Svære sager"}),
    Case("DELETE", "/teams/{team}", "admin"),
    Case("GET", "/teams/{team}/members", "agent"),
    Case("PUT", "/teams/{team}/members/{colleague}", "admin"),
    Case("DELETE", "/teams/{team}/members/{member}", "admin"),
    Case("GET", "/sla-policies", "agent"),
    Case("POST", "/sla-policies", "admin", {"name": "Sølv"}),
    Case("GET", "/sla-policies/{sla_policy}", "agent"),
    Case("PATCH", "/sla-policies/{sla_policy}", "admin", {"description": "Svar inden for en dag"}),
    Case("DELETE", "/sla-policies/{sla_policy}", "admin"),
    Case("GET", "/calendars", "agent"),
    Case(
        "POST",
        "/calendars",
        "admin",
        {
            "name": "Kundtjänst Stockholm",
            "timezone": "Europe/Stockholm",
            "hours": {"mon": [{"start": "08:00", "end": "17:00"}]},
        },
    ),
    Case("GET", "/calendars/{calendar}", "agent"),
    Case("PATCH", "/calendars/{calendar}", "admin", {"description": "Første linje"}),
    Case("DELETE", "/calendars/{calendar}", "admin"),
    Case("GET", "/calendars/{calendar}/holidays", "agent"),
    Case(
        "PUT",
        "/calendars/{calendar}/holidays",
        "admin",
        {"holidays": [{"date": "2026-06-05", "name": "Grundlovsdag"}]},
    ),
    Case(
        "POST", "/calendars/{calendar}/holidays/import", "admin", {"country": "DK", "years": [2026]}
    ),
    Case("GET", "/tags", "agent"),
    Case("DELETE", "/tags/{tag}", "supervisor"),
    Case("POST", "/tags/{tag}/rename", "supervisor", {"new_name": "omdøbt"}),
    Case("GET", "/templates", "external"),
    Case("POST", "/templates", "supervisor", {"name": "Påmindelse", "body": "Hej igen"}),
    Case("GET", "/templates/suggestions?ticket_id={ticket}", "external"),
    Case("GET", "/templates/{template}", "external"),
    Case("PATCH", "/templates/{template}", "supervisor", {"category": "Hilsner"}),
    Case("DELETE", "/templates/{template}", "supervisor"),
    Case("GET", "/templates/{template}/versions", "external"),
    Case("POST", "/templates/{template}/render?ticket_id={ticket}", "external"),
    Case("GET", "/audit-events", "admin"),
    Case("GET", "/audit-events/export", "admin", params={"format": "jsonl"}),
    Case("GET", "/audit-events/verify", "admin"),
    Case("GET", "/events", "admin"),
    Case("GET", "/export/tickets", "admin"),
    Case("GET", "/export/customers", "admin"),
    Case("GET", "/events/types", "external"),
    Case("GET", "/privacy/patterns", "admin"),
    Case(
        "POST",
        "/privacy/patterns",
        "admin",
        {"name": "konto", "label": "Kontonummer", "regex": "\\d{4}-\\d{10}"},
    ),
    Case("GET", "/privacy/patterns/{pattern}", "admin"),
    Case("PATCH", "/privacy/patterns/{pattern}", "admin", {"enabled": False}),
    Case("DELETE", "/privacy/patterns/{pattern}", "admin"),
    Case("POST", "/messages/{message}/reveal", "supervisor", {"reason": "Kunden spurgte"}),
    Case("GET", "/tickets/{ticket}/links", "external"),
    Case("GET", "/tickets/{ticket}/follow-up", "agent"),
    Case("PUT", "/tickets/{ticket}/follow-up", "agent", {"in": "PT2H", "note": "Ring tilbage"}),
    Case("DELETE", "/tickets/{ticket}/follow-up", "agent"),
    Case("GET", "/tickets/{ticket}/proactive-updates", "agent"),
    Case(
        "PUT",
        "/tickets/{ticket}/proactive-updates",
        "agent",
        {"template_id": "{template}", "every_minutes": 30},
    ),
    Case("DELETE", "/tickets/{ticket}/proactive-updates", "agent"),
    Case("GET", "/incidents", "agent"),
    Case("POST", "/incidents", "supervisor", {"title": "Nettbanken er nede"}),
    Case("GET", "/incidents/{incident}", "agent"),
    Case("PATCH", "/incidents/{incident}", "supervisor", {"status_text": "Vi jobber med saken"}),
    Case("DELETE", "/incidents/{incident}", "supervisor"),
    Case("GET", "/incidents/{incident}/tickets", "agent"),
    Case("POST", "/incidents/{incident}/tickets", "agent", {"ticket_ids": ["{ticket}"]}),
    Case("DELETE", "/incidents/{incident}/tickets/{ticket}", "agent"),
    Case("POST", "/incidents/{incident}/updates", "supervisor", {"body_text": "Alt virker igjen"}),
    Case("GET", "/incidents/{incident}/updates", "agent"),
    Case("GET", "/ingest/quarantine", "supervisor"),
    Case("GET", "/rules", "supervisor"),
    Case("PUT", "/rules", "admin", {"rules": []}),
    Case(
        "POST",
        "/rules",
        "admin",
        {"id": "vip", "name": "VIP", "actions": [{"type": "set_priority", "priority": "high"}]},
    ),
    Case("GET", "/rules/versions", "supervisor"),
    Case("GET", "/rules/export", "supervisor"),
    Case(
        "POST",
        "/rules/simulate",
        "supervisor",
        {"message": {"sender": "kari@nordlys.no", "subject": "Hjelp"}},
    ),
    Case(
        "POST",
        "/rules/replay",
        "supervisor",
        {"rule_set": {"rules": []}, "created_after": "2026-01-01T00:00:00Z"},
    ),
    Case("GET", "/tickets/{ticket}/routing", "agent"),
    Case("GET", "/tickets/{ticket}/sla", "agent"),
    Case("GET", "/mailboxes", "admin"),
    Case("GET", "/webhooks", "admin"),
    Case(
        "POST", "/webhooks", "admin", {"url": "https://hooks.example.com/a", "event_types": ["*"]}
    ),
    Case("GET", "/webhooks/{webhook}", "admin"),
    Case("PATCH", "/webhooks/{webhook}", "admin", {"description": "CRM"}),
    Case("DELETE", "/webhooks/{webhook}", "admin"),
    Case("POST", "/webhooks/{webhook}/rotate-secret", "admin"),
    Case("GET", "/webhooks/{webhook}/deliveries", "admin"),
    Case(
        "POST",
        "/tickets/bulk",
        "agent",
        {"filter": {"queue_id": "{queue}"}, "changes": {"add_tags": ["massevis"]}},
    ),
    Case("GET", "/jobs/{job}", "admin"),
    Case("GET", "/jobs/{job}/items", "admin"),
    Case("POST", "/jobs/{job}/cancel", "admin"),
    Case(
        "POST",
        "/mailboxes",
        "admin",
        {
            "name": "Support DK",
            "imap_host": "imap.example.dk",
            "imap_security": "tls",
            "username": "support@example.dk",
            "auth_method": "password",
            "password": "hemmeligt",
            "addresses": ["support@example.dk"],
        },
    ),
    Case("GET", "/mailboxes/{mailbox}", "admin"),
    Case("PATCH", "/mailboxes/{mailbox}", "admin", {"name": "Support Sverige"}),
    Case("DELETE", "/mailboxes/{mailbox}", "admin"),
    Case("POST", "/mailboxes/{mailbox}/test", "admin"),
    Case("PUT", "/mailboxes/{mailbox}/oauth-token", "admin", {"access_token": "ny-adgang"}),
    Case("GET", "/ingest/inbound/{inbound}", "supervisor"),
    Case("GET", "/ingest/inbound/{inbound}/raw", "admin", params={"reason": "Klage"}),
    Case("POST", "/ingest/quarantine/{inbound}/retry", "supervisor"),
    Case("GET", "/rules/{rule}", "supervisor"),
    Case("DELETE", "/rules/{rule}", "admin"),
    Case("GET", "/rules/versions/{rule_version}", "supervisor"),
    # The YAML body: JSON is YAML, and the client sends the body as it is.
    Case("PUT", "/rules/yaml", "admin", {"rules": []}),
    Case("POST", "/tickets/{spare_ticket}/merge", "agent", {"into_ticket_id": "{ticket}"}),
    Case("POST", "/tickets/{ticket}/links/{link}/dismiss", "agent"),
    Case("POST", "/webhooks/{webhook}/ping", "admin"),
    Case("POST", "/webhooks/{webhook}/deliveries/{delivery}/redeliver", "admin"),
    Case("GET", "/export/messages", "admin"),
    Case("GET", "/export/organisations", "admin"),
]

# Routes no role matrix case calls, each for a reason.
OUTSIDE_THE_MATRIX = {
    # No login: probes, public status pages and the login steps themselves.
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/status/{token}"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/login/2fa"),
    # The caller's own second factor, open to every role alike; each needs a current code of
    # an enrolment (tests/auth/test_two_factor.py).
    ("POST", "/api/v1/auth/2fa/confirm"),
    ("DELETE", "/api/v1/auth/2fa"),
    ("POST", "/api/v1/auth/2fa/recovery-codes"),
}


async def _build_world(
    client: httpx.AsyncClient, admin: Caller, partner_id: int, colleague_id: int, member_id: int
) -> dict[str, Any]:
    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(f"/api/v1{path}", headers=admin.headers, json=body)
        assert response.status_code == 201, (path, response.text)
        result: dict[str, Any] = response.json()
        return result

    # Replies are mailed: the queue answers from a mailbox that can send.
    mailbox = await post(
        "/mailboxes",
        {
            "name": "Support Norge",
            "imap_host": "imap.example.no",
            "imap_security": "tls",
            "username": "support@example.no",
            "auth_method": "password",
            "password": "hemmelig",
            "addresses": ["support@example.no"],
            "smtp_host": "smtp.example.no",
            "smtp_port": 587,
        },
    )
    queue = await post(
        "/queues", {"name": "Support Norge", "mailbox_id": mailbox["id"], "retention_months": 120}
    )
    grant = await client.put(
        f"/api/v1/queues/{queue['id']}/grants/{partner_id}", headers=admin.headers
    )
    assert grant.status_code == 200, grant.text
    organisation = await post(
        "/organisations",
        {"name": "Nordlys AS", "domains": ["nordlys.no"], "external_ids": {"erp": "O-1"}},
    )
    team = await post("/teams", {"name": "Førstelinje"})
    member = await client.put(
        f"/api/v1/teams/{team['id']}/members/{member_id}", headers=admin.headers
    )
    assert member.status_code == 200, member.text
    sla_policy = await post("/sla-policies", {"name": "Guld"})
    calendar = await post(
        "/calendars",
        {
            "name": "Kundeservice København",
            "timezone": "Europe/Copenhagen",
            "hours": {"mon": [{"start": "08:00", "end": "16:00"}]},
        },
    )
    spare = await post(
        "/customers", {"name": "Ola", "emails": ["ola@example.no"], "external_ids": {"crm": "S-1"}}
    )
    upload = {"filename": "bilde.png", "content_base64": base64.b64encode(b"png").decode()}
    ticket = await post(
        "/tickets",
        {
            "subject": "Hjelp",
            "queue_id": queue["id"],
            "tags": ["nordlys"],
            "customer": {"email": "kari@nordlys.no", "name": "Kari"},
            "message": {"body_text": "Hei", "attachments": [upload]},
        },
    )
    template = await post(
        "/templates",
        {"name": "Velkomst", "queue_ids": [queue["id"]], "body": "Hei {{ customer.first_name }}"},
    )
    incident = await post("/incidents", {"title": "Driftsforstyrrelse"})
    for method, path, body in (
        ("POST", f"/incidents/{incident['id']}/tickets", {"ticket_ids": [ticket["id"]]}),
        ("PUT", f"/tickets/{ticket['id']}/follow-up", {"in": "P1D", "note": "Ring Kari"}),
        (
            "PUT",
            f"/tickets/{ticket['id']}/proactive-updates",
            {"template_id": template["id"], "every_minutes": 60},
        ),
    ):
        done = await client.request(method, f"/api/v1{path}", headers=admin.headers, json=body)
        assert done.status_code == 200, (path, done.text)
    webhook = await post(
        "/webhooks", {"url": "https://hooks.example.com/ticketry", "event_types": ["*"]}
    )
    messages = await client.get(f"/api/v1/tickets/{ticket['id']}/messages", headers=admin.headers)
    return {
        "queue": queue["id"],
        "partner": partner_id,
        "organisation": organisation["id"],
        "team": team["id"],
        "colleague": colleague_id,
        "member": member_id,
        "sla_policy": sla_policy["id"],
        "calendar": calendar["id"],
        "customer": ticket["customer_id"],
        "spare_customer": spare["id"],
        "ticket": ticket["id"],
        "attachment": messages.json()["items"][0]["attachments"][0]["id"],
        "message": messages.json()["items"][0]["id"],
        "tag": "nordlys",
        "template": template["id"],
        "incident": incident["id"],
        "webhook": webhook["id"],
    }


async def _created(
    client: httpx.AsyncClient, admin: Caller, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(f"/api/v1{path}", headers=admin.headers, json=body)
    assert response.status_code == 201, (path, response.text)
    result: dict[str, Any] = response.json()
    return result


async def _add_what_the_case_needs(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    world: dict[str, Any],
    case: Case,
) -> None:
    """The parts of the world that only a few cases call, built for those alone."""
    needs = set(re.findall(r"\{(\w+)\}", case.path))
    if needs & {"spare_ticket", "link"}:
        spare = await _created(
            client,
            admin,
            "/tickets",
            {
                "subject": "Hjelp igjen",
                "queue_id": world["queue"],
                "customer": {"email": "kari@nordlys.no"},
                "message": {"body_text": "Hei igjen"},
            },
        )
        world["spare_ticket"] = spare["id"]
    if "link" in needs:
        # As a weak mail match suggests it.
        link = TicketLink(
            ticket_id=world["spare_ticket"],
            other_ticket_id=world["ticket"],
            kind=LinkKind.possible_thread,
            reason="Same sender, similar subject",
        )
        session.add(link)
        await session.flush()
        world["link"] = link.id
    if "mailbox" in needs:
        # Nothing listens on the port: the connection test fails at once, with a 200 saying so.
        mailbox = {
            "name": "Support Danmark",
            "imap_host": "127.0.0.1",
            "imap_port": 9,
            "imap_security": "none",
            "username": "support@example.dk",
            "auth_method": "xoauth2",
            "oauth_access_token": "adgang",
        }
        world["mailbox"] = (await _created(client, admin, "/mailboxes", mailbox))["id"]
    if "inbound" in needs:
        inbound_id = await ingest.receive(session, build_mail(), source="imap")
        await ingest.quarantine(session, inbound_id, "Set aside to be retried")
        world["inbound"] = inbound_id
    if needs & {"rule", "rule_version"}:
        vip = {
            "id": "vip",
            "name": "VIP",
            "actions": [{"type": "set_priority", "priority": "high"}],
        }
        world["rule"] = "vip"
        world["rule_version"] = (await _created(client, admin, "/rules", vip))["version"]
    if "delivery" in needs:
        event = Event(type="ticket.created", entity="ticket", entity_id=world["ticket"], data={})
        session.add(event)
        await session.flush()
        delivery = WebhookDelivery(
            webhook_id=world["webhook"], event_id=event.id, status=WebhookDeliveryStatus.failed
        )
        session.add(delivery)
        await session.flush()
        world["delivery"] = delivery.id


def _fill(value: Any, world: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, world) for v in value]
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return world[value[1:-1]]
    return value


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.path}")
async def test_role_matrix(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    make_agent: MakeAgent,
    case: Case,
    role: str,
) -> None:
    partner = await make_agent("external") if role != "external" else None
    caller = await make_agent(role)
    if partner is None:
        partner = caller
    colleague = await make_agent("agent")
    member = await make_agent("agent")
    world = await _build_world(client, admin, partner.id, colleague.id, member.id)
    tokens = await client.get("/api/v1/auth/tokens", headers=caller.headers)
    world["own_token"] = tokens.json()[0]["id"]
    if "{job}" in case.path:
        # A job is seen by the agent who started it and by admins: here, an admin's.
        job = await client.post(
            "/api/v1/tickets/bulk",
            headers=admin.headers,
            json={"ticket_ids": [world["ticket"]], "changes": {"status": "pending"}},
        )
        assert job.status_code == 202, job.text
        world["job"] = job.json()["id"]
    if "{pattern}" in case.path:
        pattern = await client.post(
            "/api/v1/privacy/patterns",
            headers=admin.headers,
            json={"name": "kundenummer", "label": "Kundenummer", "regex": "K-\\d{4}"},
        )
        assert pattern.status_code == 201, pattern.text
        world["pattern"] = pattern.json()["id"]
    await _add_what_the_case_needs(client, session, admin, world, case)

    path = "/api/v1" + case.path.format(**world)
    response = await client.request(
        case.method,
        path,
        headers=caller.headers,
        json=_fill(case.body, world) if case.body is not None else None,
        params=case.params,
    )
    if RANK[role] >= RANK[case.min_role]:
        assert response.status_code < 300, (role, response.status_code, response.text)
    else:
        assert response.status_code == 403, (role, response.status_code, response.text)
        assert response.headers["content-type"] == "application/problem+json"


def test_every_route_has_a_case_or_a_reason(app: FastAPI) -> None:
    """A new endpoint without a case here fails, until it gets one (or a reason above)."""
    routes = [
        (context.path, re.compile(re.sub(r"\{[^}]+\}", "[^/]+", context.path)), route.methods)
        for context in iter_route_contexts(app.routes)
        if isinstance(route := context.original_route, APIRoute)
    ]

    def called(case: Case) -> tuple[str, str]:
        # The first route matching, as the router picks it: /rules/versions is not /rules/{id}.
        url = "/api/v1" + case.path.partition("?")[0]
        return next(
            (case.method, path)
            for path, pattern, methods in routes
            if case.method in methods and pattern.fullmatch(url)
        )

    every = {(method, path) for path, _, methods in routes for method in methods}
    covered = {called(case) for case in CASES}
    assert every - covered == OUTSIDE_THE_MATRIX
