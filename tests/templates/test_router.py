from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.core.config import Settings
from app.queues.models import Queue
from app.tickets.models import Message, MessageDirection
from tests.conftest import Caller, MakeAgent
from tests.helpers import audit_events
from tests.outbound.conftest import make_mailbox
from tests.smtpserver import SmtpSink

TEMPLATES = "/api/v1/templates"


async def _post(client: httpx.AsyncClient, caller: Caller, path: str, **body: Any) -> Any:
    response = await client.post(f"/api/v1{path}", headers=caller.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def _create(client: httpx.AsyncClient, caller: Caller, **body: Any) -> dict[str, Any]:
    body.setdefault("body", "Hej {{ customer.first_name }}")
    created: dict[str, Any] = await _post(client, caller, "/templates", **body)
    return created


def _problem(response: httpx.Response, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    return problem


def _pointer(response: httpx.Response) -> str:
    errors = _problem(response)["errors"]
    assert len(errors) == 1, errors
    pointer: str = errors[0]["pointer"]
    return pointer


async def _ticket(
    client: httpx.AsyncClient,
    admin: Caller,
    queue_id: int | None = None,
    subject: str = "Min ordre er forsinket",
    **fields: Any,
) -> dict[str, Any]:
    """A ticket of Åse Ørsted (Danish, customer number K-1001, of Fjordværk A/S)."""
    organisation = await _post(client, admin, "/organisations", name="Fjordværk A/S")
    customer = await _post(
        client,
        admin,
        "/customers",
        name="Åse Ørsted",
        emails=["aase@fjordvaerk.dk"],
        customer_number="K-1001",
        language="da",
        organisation_id=organisation["id"],
    )
    ticket: dict[str, Any] = await _post(
        client,
        admin,
        "/tickets",
        subject=subject,
        queue_id=queue_id,
        customer={"id": customer["id"]},
        message={"body_text": "Hvor bliver min pakke af?"},
        **fields,
    )
    return ticket


async def _render(
    client: httpx.AsyncClient, caller: Caller, template_id: int, ticket_id: int
) -> httpx.Response:
    return await client.post(
        f"{TEMPLATES}/{template_id}/render", headers=caller.headers, params={"ticket_id": ticket_id}
    )


async def test_supervisor_creates_and_every_agent_reads(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    supervisor = await make_agent(AgentRole.supervisor)
    queue = await _post(client, admin, "/queues", name="Kundeservice Århus")
    created = await client.post(
        TEMPLATES,
        headers=supervisor.headers,
        json={
            "name": "Forsinket levering",
            "category": "Levering",
            "queue_ids": [queue["id"], queue["id"]],
            "language": "DA",
            "subject": "Vedr. din ordre {{ ticket.reference }}",
            "body": "Kære {{ customer.first_name }},\n\nvi undskylder forsinkelsen.",
        },
    )
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"1"'
    template = created.json()
    assert created.headers["location"] == f"{TEMPLATES}/{template['id']}"
    assert template["name"] == "Forsinket levering"
    assert template["queue_ids"] == [queue["id"]]
    assert template["language"] == "da"
    assert template["body_format"] == "text"
    assert template["active"] is True

    agent = await make_agent(AgentRole.agent)
    fetched = await client.get(created.headers["location"], headers=agent.headers)
    assert fetched.status_code == 200
    assert fetched.headers["etag"] == '"1"'
    assert fetched.json() == template

    events = await audit_events(
        client, admin, entity_type="template", entity_id=str(template["id"])
    )
    assert [e["action"] for e in events] == ["template.created"]
    assert events[0]["actor_agent_id"] == supervisor.id
    assert events[0]["after"]["queue_ids"] == [queue["id"]]


async def test_list_filters_and_pages(client: httpx.AsyncClient, admin: Caller) -> None:
    support = await _post(client, admin, "/queues", name="Support")
    sales = await _post(client, admin, "/queues", name="Salg")
    everywhere = await _create(client, admin, name="A Hilsen", language="sv")
    support_only = await _create(
        client, admin, name="B Faktura", category="Faktura", queue_ids=[support["id"]]
    )
    sales_only = await _create(
        client, admin, name="C Tilbud", queue_ids=[sales["id"]], active=False
    )

    async def names(**params: Any) -> list[str]:
        response = await client.get(TEMPLATES, headers=admin.headers, params=params)
        assert response.status_code == 200, response.text
        return [t["name"] for t in response.json()["items"]]

    assert await names() == ["A Hilsen", "B Faktura", "C Tilbud"]
    assert await names(category="Faktura") == [support_only["name"]]
    assert await names(language="SV") == [everywhere["name"]]
    # A queue's templates: bound to it, or to no queue at all.
    assert await names(queue_id=support["id"]) == ["A Hilsen", "B Faktura"]
    assert await names(active=False) == [sales_only["name"]]

    first = await client.get(TEMPLATES, headers=admin.headers, params={"limit": 2})
    page = first.json()
    assert [t["name"] for t in page["items"]] == ["A Hilsen", "B Faktura"]
    rest = await client.get(
        TEMPLATES, headers=admin.headers, params={"limit": 2, "cursor": page["next_cursor"]}
    )
    assert [t["name"] for t in rest.json()["items"]] == ["C Tilbud"]
    assert rest.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("body", "pointer", "words"),
    [
        ({"body": "Hej\n{% if %}"}, "/body/body", ["Line 2"]),
        ({"subject": "Sag {{ ticket.nummer }}"}, "/body/subject", ["ticket has no field 'nummer'"]),
        ({"body": "{{ kunde.navn }}"}, "/body/body", ["unknown placeholder 'kunde'"]),
        ({"body": "{{ customer.adresse }}"}, "/body/body", ["customer has no field 'adresse'"]),
        ({"body": "{{ ticket.subject|shout }}"}, "/body/body", ["No filter named 'shout'"]),
        ({"body": "{{ range(10) }}"}, "/body/body", ["calling functions"]),
        ({"body": "{{ ''.__class__.__mro__ }}"}, "/body/body", ["underscore"]),
        ({"body": "<p>{% include 'x.html' %}</p>", "body_format": "html"}, "/body/body", []),
        ({"queue_ids": [987654321]}, "/body/queue_ids", ["Queue 987654321 does not exist"]),
    ],
)
async def test_invalid_templates_point_at_the_field(
    client: httpx.AsyncClient, admin: Caller, body: dict[str, Any], pointer: str, words: list[str]
) -> None:
    response = await client.post(
        TEMPLATES, headers=admin.headers, json={"name": "Ugyldig", "body": "Hej", **body}
    )
    assert _pointer(response) == pointer
    for word in words:
        assert word in response.json()["detail"]
    assert (await client.get(TEMPLATES, headers=admin.headers)).json()["items"] == []


async def test_update_is_checked_like_create(client: httpx.AsyncClient, admin: Caller) -> None:
    template = await _create(client, admin, name="Svar")
    path = f"{TEMPLATES}/{template['id']}"
    bad = await client.patch(path, headers=admin.headers, json={"body": "{{ agent.telefon }}"})
    assert _pointer(bad) == "/body/body"
    typo = await client.patch(path, headers=admin.headers, json={"bodi": "x"})
    assert _pointer(typo) == "/body/bodi"
    null = await client.patch(path, headers=admin.headers, json={"body": None})
    assert _pointer(null) == "/body/body"
    unchanged = await client.get(path, headers=admin.headers)
    assert unchanged.json() == template


async def test_each_save_is_a_version(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    supervisor = await make_agent(AgentRole.supervisor)
    queue = await _post(client, admin, "/queues", name="Reklamationer")
    template = await _create(client, admin, name="Reklamation", body="Version ét")
    path = f"{TEMPLATES}/{template['id']}"

    first = await client.patch(
        path, headers={**supervisor.headers, "If-Match": '"1"'}, json={"body": "Version to"}
    )
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == '"2"'
    # Only the queues change: still a new version.
    second = await client.patch(
        path, headers={**admin.headers, "If-Match": '"2"'}, json={"queue_ids": [queue["id"]]}
    )
    assert second.status_code == 200, second.text
    assert second.json()["version"] == 3
    assert second.json()["queue_ids"] == [queue["id"]]
    # Nothing changes: no new version.
    same = await client.patch(path, headers=admin.headers, json={"body": "Version to"})
    assert same.json()["version"] == 3

    versions = await client.get(f"{path}/versions", headers=admin.headers)
    assert versions.status_code == 200, versions.text
    items = versions.json()["items"]
    assert [(v["version"], v["body"], v["queue_ids"]) for v in items] == [
        (3, "Version to", [queue["id"]]),
        (2, "Version to", []),
        (1, "Version ét", []),
    ]
    assert [v["saved_by_agent_id"] for v in items] == [admin.id, supervisor.id, admin.id]

    events = await audit_events(
        client, admin, entity_type="template", entity_id=str(template["id"])
    )
    assert [e["action"] for e in events] == [
        "template.updated",
        "template.updated",
        "template.created",
    ]
    assert events[0]["before"]["queue_ids"] == []
    assert events[0]["after"]["queue_ids"] == [queue["id"]]
    assert events[1]["after"]["body"] == "Version to"


async def test_stale_if_match_is_412(client: httpx.AsyncClient, admin: Caller) -> None:
    template = await _create(client, admin, name="Låst")
    path = f"{TEMPLATES}/{template['id']}"
    changed = await client.patch(
        path, headers={**admin.headers, "If-Match": '"1"'}, json={"active": False}
    )
    assert changed.status_code == 200
    stale = await client.patch(
        path, headers={**admin.headers, "If-Match": '"1"'}, json={"name": "Ny"}
    )
    assert _problem(stale, 412)["current_version"] == 2
    stale_delete = await client.delete(path, headers={**admin.headers, "If-Match": '"1"'})
    _problem(stale_delete, 412)
    assert (await client.get(path, headers=admin.headers)).json()["name"] == "Låst"


async def test_delete(client: httpx.AsyncClient, admin: Caller) -> None:
    template = await _create(client, admin, name="Væk")
    path = f"{TEMPLATES}/{template['id']}"
    deleted = await client.delete(path, headers={**admin.headers, "If-Match": '"1"'})
    assert deleted.status_code == 204
    _problem(await client.get(path, headers=admin.headers), 404)
    _problem(await client.get(f"{path}/versions", headers=admin.headers), 404)
    events = await audit_events(
        client, admin, entity_type="template", entity_id=str(template["id"])
    )
    assert events[0]["action"] == "template.deleted"
    assert events[0]["before"]["name"] == "Væk"


async def test_name_clash_is_409(client: httpx.AsyncClient, admin: Caller) -> None:
    first = await _create(client, admin, name="Velkommen")
    again = await client.post(
        TEMPLATES, headers=admin.headers, json={"name": "Velkommen", "body": "x"}
    )
    assert _problem(again, 409)["template_id"] == first["id"]


async def test_agents_read_but_only_supervisors_write(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    agent = await make_agent(AgentRole.agent)
    refused = await client.post(
        TEMPLATES, headers=agent.headers, json={"name": "Mit eget", "body": "x"}
    )
    assert "supervisor" in _problem(refused, 403)["detail"]
    template = await _create(client, admin, name="Fælles")
    patch = await client.patch(
        f"{TEMPLATES}/{template['id']}", headers=agent.headers, json={"active": False}
    )
    _problem(patch, 403)


async def test_external_partners_see_templates_of_their_queues(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    partner = await make_agent(AgentRole.external)
    granted = await _post(client, admin, "/queues", name="Partner")
    other = await _post(client, admin, "/queues", name="Intern")
    grant = await client.put(
        f"/api/v1/queues/{granted['id']}/grants/{partner.id}", headers=admin.headers
    )
    assert grant.status_code == 200
    await _create(client, admin, name="Alle køer")
    await _create(client, admin, name="Partnerkø", queue_ids=[granted["id"]])
    await _create(client, admin, name="Begge", queue_ids=[granted["id"], other["id"]])
    hidden = await _create(client, admin, name="Intern kø", queue_ids=[other["id"]])

    listed = await client.get(TEMPLATES, headers=partner.headers)
    assert [t["name"] for t in listed.json()["items"]] == ["Alle køer", "Begge", "Partnerkø"]
    for path in ("", "/versions"):
        response = await client.get(f"{TEMPLATES}/{hidden['id']}{path}", headers=partner.headers)
        _problem(response, 404)
    ticket = await _ticket(client, admin, queue_id=granted["id"])
    _problem(await _render(client, partner, hidden["id"], ticket["id"]), 404)


async def test_render_for_a_ticket(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent, settings: Any
) -> None:
    agent = await make_agent(AgentRole.agent, name="Björn Sjöström", email="bjorn@example.se")
    queue = await _post(client, admin, "/queues", name="Støtte Malmö")
    ticket = await _ticket(
        client,
        admin,
        queue_id=queue["id"],
        category="Levering",
        tags=["levering", "pakke"],
        custom_fields={"ordrenummer": "Æ-17"},
    )
    template = await _create(
        client,
        admin,
        name="Fuld besked",
        subject="Vedr. {{ ticket.subject }}\n{{ ticket.reference }}",
        body=(
            "Kære {{ customer.first_name }} ({{ customer.name }}, {{ customer.number }}, "
            "{{ customer.email }}, {{ organisation.name }}),\n\n"
            "ordre {{ ticket.custom_fields.ordrenummer }} i {{ ticket.queue }}: "
            "{{ ticket.status }}/{{ ticket.priority }}/{{ ticket.category }}/"
            "{{ ticket.tags|join(', ') }}/{{ ticket.created_at|date('%Y') }}\n"
            "Status: {{ status_link }}\n\n"
            "Hilsen {{ agent.name }} <{{ agent.email }}>"
        ),
    )
    response = await _render(client, agent, template["id"], ticket["id"])
    assert response.status_code == 200, response.text
    rendered = response.json()
    reference = f"[#{ticket['number']}]"
    assert rendered["subject"] == f"Vedr. Min ordre er forsinket {reference}"
    year = ticket["created_at"][:4]
    status_link = f"{settings.public_base_url}/status/"
    assert rendered["body_text"].startswith(
        "Kære Åse (Åse Ørsted, K-1001, aase@fjordvaerk.dk, Fjordværk A/S),\n\n"
        f"ordre Æ-17 i Støtte Malmö: new/normal/Levering/levering, pakke/{year}\n"
        f"Status: {status_link}"
    )
    assert rendered["body_text"].endswith("Hilsen Björn Sjöström <bjorn@example.se>")
    assert rendered["body_html"].startswith(
        "<p>Kære Åse (Åse Ørsted, K-1001, aase@fjordvaerk.dk, Fjordværk A/S),</p>\n<p>ordre Æ-17"
    )
    assert "<br>\nStatus: " in rendered["body_html"]
    assert rendered["body_html"].endswith("<p>Hilsen Björn Sjöström &lt;bjorn@example.se&gt;</p>")


CPR = "010190-1234"
EVERY_CUSTOMER_VALUE = (
    "{{ customer.name }}|{{ customer.first_name }}|{{ customer.email }}|{{ customer.number }}|"
    "{{ customer.language }}|{{ organisation.name }}|{{ status_link }}|{{ agent.name }}"
)


async def test_a_partner_renders_only_what_their_grant_shows(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent, settings: Settings
) -> None:
    partner = await make_agent(AgentRole.external, name="Pia Partner")
    queue = await _post(client, admin, "/queues", name="Partner")
    ticket = await _ticket(client, admin, queue_id=queue["id"], subject=f"CPR {CPR}")
    template = await _create(
        client, admin, name="Alt", subject="Vedr. {{ ticket.subject }}", body=EVERY_CUSTOMER_VALUE
    )
    shown = {
        "none": "|||||||Pia Partner",
        "name": "Åse Ørsted|Åse||||||Pia Partner",
        "name_and_email": "Åse Ørsted|Åse|aase@fjordvaerk.dk|||||Pia Partner",
    }
    for grant, body in shown.items():
        granted = await client.put(
            f"/api/v1/queues/{queue['id']}/grants/{partner.id}",
            headers=admin.headers,
            json={"customer_fields": grant},
        )
        assert granted.status_code == 200, granted.text
        response = await _render(client, partner, template["id"], ticket["id"])
        assert response.status_code == 200, response.text
        assert response.json()["body_text"] == body, grant
        assert response.json()["subject"] == "Vedr. CPR ******-**34"

    # Staff see every value; the preview masks the subject's numbers for them too.
    staff = (await _render(client, admin, template["id"], ticket["id"])).json()
    assert staff["subject"] == "Vedr. CPR ******-**34"
    name, first, email, number, language, organisation, link, _ = staff["body_text"].split("|")
    assert (name, first, email, number) == ("Åse Ørsted", "Åse", "aase@fjordvaerk.dk", "K-1001")
    assert (language, organisation) == ("da", "Fjordværk A/S")
    assert link.startswith(f"{settings.public_base_url}/status/")


async def test_a_reply_written_from_a_template_keeps_the_customers_numbers(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: Caller,
    smtp_sink: SmtpSink,
    settings: Settings,
) -> None:
    mailbox = await make_mailbox(session, smtp_sink, settings.resolved_secret_key())
    queue = Queue(name="Med postkasse", mailbox_id=mailbox.id)
    session.add(queue)
    await session.flush()
    ticket = await _ticket(client, admin, queue_id=queue.id, subject=f"CPR {CPR}")
    template = await _create(client, admin, name="Svar", body="Vedr. {{ ticket.subject }}")
    reply = await client.post(
        f"/api/v1/tickets/{ticket['id']}/messages",
        headers=admin.headers,
        json={"template_id": template["id"]},
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["body_text"] == "Vedr. CPR ******-**34"
    mailed = await session.scalars(
        select(Message.body_text).where(
            Message.ticket_id == ticket["id"], Message.direction == MessageDirection.outbound
        )
    )
    assert mailed.all() == [f"Vedr. CPR {CPR}"]


async def test_render_escapes_values_in_html(client: httpx.AsyncClient, admin: Caller) -> None:
    customer = await _post(
        client, admin, "/customers", name="<script>alert(1)</script> Ærø", emails=["x@example.dk"]
    )
    ticket = await _post(
        client,
        admin,
        "/tickets",
        subject="Spørgsmål om <b>fed</b>",
        customer={"id": customer["id"]},
        message={"body_text": "Hej"},
    )
    html = await _create(
        client,
        admin,
        name="HTML",
        body_format="html",
        body="<p>Hej <b>{{ customer.name }}</b></p><p>Om: {{ ticket.subject }}</p>",
    )
    text = await _create(client, admin, name="Tekst", body="Hej {{ customer.name }}")
    for template in (html, text):
        response = await _render(client, admin, template["id"], ticket["id"])
        assert response.status_code == 200, response.text
        rendered = response.json()
        assert "<script>" not in rendered["body_html"]
        assert "&lt;script&gt;alert(1)&lt;/script&gt; Ærø" in rendered["body_html"]
        assert "<script>alert(1)</script> Ærø" in rendered["body_text"]
    html_rendered = (await _render(client, admin, html["id"], ticket["id"])).json()
    assert " ".join(html_rendered["body_text"].split()) == (
        "Hej <script>alert(1)</script> Ærø Om: Spørgsmål om <b>fed</b>"
    )


async def test_render_names_a_missing_custom_field(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    ticket = await _ticket(client, admin, custom_fields={"ordrenummer": "17"})
    template = await _create(
        client,
        admin,
        name="Kundenummer",
        body="Linje et\nDit kundenummer: {{ ticket.custom_fields.kundenummer }}",
    )
    problem = _problem(await _render(client, admin, template["id"], ticket["id"]))
    assert "ticket.custom_fields.kundenummer does not exist" in problem["detail"]
    assert "line 2" in problem["detail"]

    defaulted = await _create(
        client,
        admin,
        name="Med standard",
        body="Nummer: {{ ticket.custom_fields.kundenummer|default('ukendt') }}",
    )
    response = await _render(client, admin, defaulted["id"], ticket["id"])
    assert response.json()["body_text"] == "Nummer: ukendt"


async def test_render_needs_a_visible_ticket(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    partner = await make_agent(AgentRole.external)
    template = await _create(client, admin, name="Alle")
    ticket = await _ticket(client, admin)
    _problem(await _render(client, partner, template["id"], ticket["id"]), 404)
    _problem(await _render(client, admin, template["id"], 987654321), 404)


@pytest.mark.parametrize(
    "body",
    [
        "{{ 'a' * 100000000 }}",
        "{{ 10 ** 10 ** 10 }}",
        "{% for a in 'x' * 5000 %}{% for b in 'x' * 5000 %}{% endfor %}{% endfor %}",
        "{% for tag in ticket.tags %}{{ 'ø' * 900000 }}{% endfor %}",
        "{% set s = 'å' * 1000000 %}{{ s ~ s }}",
        "{{ ('a' * 2000)|replace('a', 'a' * 1000) }}",
    ],
)
async def test_runaway_templates_are_stopped_when_rendered(
    client: httpx.AsyncClient, admin: Caller, body: str
) -> None:
    ticket = await _ticket(client, admin, tags=["en", "to"])
    template = await _create(client, admin, name="Bombe", body=body)
    problem = _problem(await _render(client, admin, template["id"], ticket["id"]))
    assert problem["detail"].startswith("The body of the template cannot be filled in")


async def test_suggestions_rank_queue_then_category_then_language(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    queue = await _post(client, admin, "/queues", name="Levering")
    other = await _post(client, admin, "/queues", name="Økonomi")
    ticket = await _ticket(client, admin, queue_id=queue["id"], category="Forsinkelse")

    async def make(name: str, **body: Any) -> None:
        await _create(client, admin, name=name, **body)

    await make("Generel svensk", language="sv")
    await make("Generel dansk", language="da-DK")
    await make("Kategori", category="Forsinkelse", language="sv")
    await make("Køen", queue_ids=[queue["id"]])
    await make("Køen og kategori", queue_ids=[queue["id"], other["id"]], category="Forsinkelse")
    await make("Anden kø", queue_ids=[other["id"]], category="Forsinkelse", language="da")
    await make("Inaktiv", queue_ids=[queue["id"]], category="Forsinkelse", active=False)

    response = await client.get(
        f"{TEMPLATES}/suggestions", headers=admin.headers, params={"ticket_id": ticket["id"]}
    )
    assert response.status_code == 200, response.text
    assert [(s["template"]["name"], s["matches"]) for s in response.json()] == [
        ("Køen og kategori", ["queue", "category"]),
        ("Køen", ["queue"]),
        ("Kategori", ["category"]),
        ("Generel dansk", ["language"]),
        ("Generel svensk", []),
    ]
