from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Invalid
from app.templates import service
from app.templates.models import BodyFormat, Template
from app.templates.rendering import check_source, render_source
from app.tickets.models import Ticket
from tests.helpers import add_ticket

VARIABLES: dict[str, Any] = {
    "customer": {
        "name": "Åsa Öberg",
        "first_name": "Åsa",
        "email": "asa@example.se",
        "number": "K-7",
        "language": "sv",
    },
    "organisation": {"name": "Fjällbo AB"},
    "ticket": {
        "number": 100123,
        "reference": "[#100123]",
        "subject": "Fråga om räkning",
        "status": "open",
        "priority": "high",
        "category": "Faktura",
        "queue": "Kundtjänst",
        "tags": ["faktura", "brådskande"],
        "created_at": datetime(2026, 3, 5, 14, 30, tzinfo=UTC),
        "custom_fields": {"ordernummer": "Ø-42", "leveret": "2026-03-01"},
    },
    "agent": {"name": "Bo Ærenlund", "email": "bo@example.dk"},
    "status_link": "https://support.example/status/abc",
}


def _text(body: str) -> str:
    return render_source(None, body, BodyFormat.text, VARIABLES).body_text


def _refused(body: str) -> str:
    with pytest.raises(Invalid) as refused:
        _text(body)
    assert refused.value.status == 422
    return refused.value.detail


def test_text_body_gets_an_escaped_html_part() -> None:
    rendered = render_source(
        "Re: {{ ticket.subject }}",
        "Hej {{ customer.first_name }} & <välkommen>,\n\ndin order {{ ticket.reference }}\n"
        "gäller {{ ticket.custom_fields.ordernummer }}.\n",
        BodyFormat.text,
        VARIABLES,
    )
    assert rendered.subject == "Re: Fråga om räkning"
    assert rendered.body_text == ("Hej Åsa & <välkommen>,\n\ndin order [#100123]\ngäller Ø-42.\n")
    assert rendered.body_html == (
        "<p>Hej Åsa &amp; &lt;välkommen&gt;,</p>\n<p>din order [#100123]<br>\ngäller Ø-42.</p>"
    )


def test_html_body_escapes_values_and_gets_a_text_part() -> None:
    variables = {**VARIABLES, "customer": {**VARIABLES["customer"], "name": "<script>x</script>"}}
    rendered = render_source(
        None,
        "<p>Hej <b>{{ customer.name ~ '!' }}</b></p><ul>{% for tag in ticket.tags %}"
        "<li>{{ tag|upper }}</li>{% endfor %}</ul>",
        BodyFormat.html,
        variables,
    )
    assert rendered.subject is None
    assert rendered.body_html == (
        "<p>Hej <b>&lt;script&gt;x&lt;/script&gt;!</b></p>"
        "<ul><li>FAKTURA</li><li>BRÅDSKANDE</li></ul>"
    )
    assert "Hej <script>x</script>!" in rendered.body_text
    assert "* FAKTURA" in rendered.body_text
    assert "* BRÅDSKANDE" in rendered.body_text


def test_subject_is_one_line_whatever_the_values_hold() -> None:
    variables = {**VARIABLES, "ticket": {**VARIABLES["ticket"], "subject": "A\r\nBcc: x@y"}}
    rendered = render_source(
        "{{ ticket.subject }}\n{{ ticket.reference }}", "x", BodyFormat.text, variables
    )
    assert rendered.subject == "A Bcc: x@y [#100123]"


def test_filters_that_templates_have() -> None:
    assert _text("{{ ticket.created_at|date('%d.%m.%Y %H:%M') }}") == "05.03.2026 14:30"
    assert _text("{{ ticket.custom_fields.leveret|date('%d/%m') }}") == "01/03"
    assert _text("{{ ticket.tags|join(' + ') }}|{{ ticket.tags|length }}") == (
        "faktura + brådskande|2"
    )
    assert _text("{{ customer.name|lower|replace('ö', 'o') }}") == "åsa oberg"
    assert _text("{{ ticket.custom_fields.saknas|default('–') }}") == "–"
    assert _text(
        "{% for key, value in ticket.custom_fields|dictsort %}{{ key }}={{ value }};{% endfor %}"
    ) == ("leveret=2026-03-01;ordernummer=Ø-42;")
    assert _text("{% set n = ticket.number + 1 %}{{ n }} {{ 'ab' * 3 }}") == "100124 ababab"


def test_a_missing_value_is_named_with_its_line() -> None:
    detail = _refused("Hej\n\n{{ ticket.custom_fields.kundnummer }}")
    assert "line 3" in detail
    assert "ticket.custom_fields.kundnummer does not exist" in detail
    # Saved templates cannot name unknown placeholders; a caller's own source still may.
    assert "'okand' is undefined" in _refused("{{ okand }}")


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{{ ''.__class__.__mro__ }}", "underscore"),
        ("{{ self.__init__.__globals__ }}", "underscore"),
        ("{{ ticket['__class__'] }}", "underscore"),
        ("{{ range(10) }}", "calling functions"),
        ("{{ dict(a=1) }}", "calling functions"),
        ("{{ customer.name.upper() }}", "calling functions"),
        ("{{ '{0.__class__}'.format(ticket) }}", "calling functions"),
        ("{{ config }}", "unknown placeholder 'config'"),
        ("{{ cycler }}", "unknown placeholder 'cycler'"),
        ("{{ lipsum }}", "unknown placeholder 'lipsum'"),
        ("{{ self }}", "unknown placeholder 'self'"),
        ("{{ ticket|attr('__class__') }}", "No filter named 'attr'"),
        ("{{ ticket|pprint }}", "No filter named 'pprint'"),
        ("{% macro m() %}x{% endmacro %}", "macros"),
        ("{% include 'secret.txt' %}", "other templates"),
        ("{% extends 'base.html' %}", "other templates"),
        ("{% set x %}{{ ticket.subject }}{% endset %}", "{% set %} blocks"),
        ("{% filter upper %}x{% endfilter %}", "{% filter %} blocks"),
        ("{{ ticket.nummer }}", "ticket has no field 'nummer'"),
        ("{% if x %}", "Line 1"),
        ("{% for x in [1] %}" * 25 + "{% endfor %}" * 25, "The template nests too deeply"),
    ],
)
def test_escape_attempts_and_mistakes_are_refused_when_saved(source: str, words: str) -> None:
    with pytest.raises(Invalid) as refused:
        check_source(source, html=False, field="body.body")
    assert refused.value.field == "body.body"
    assert words in refused.value.detail


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{{ ''.__class__.__mro__ }}", "underscore"),
        ("{{ range(10) }}", "calling functions"),
        ("{% set k = '__cla' ~ 'ss__' %}{{ ticket[k] }}", "unsafe"),
        ("{{ 'a' * 100000000 }}", "`*` would make a text of 100,000,000 characters"),
        ("{{ [1] * 100000000 }}", "`*`"),
        ("{{ 10 ** 10 ** 10 }}", "`**` would make a number too large"),
        ("{{ (10 ** 40) * (10 ** 40) }}", "`*` would make a number too large"),
        ("{% set s = 'å' * 1000000 %}{{ s ~ s }}", "joining would make"),
        ("{% set s = 'å' * 1000000 %}{{ s + s }}", "`+` would make"),
        ("{% set s = 'å' * 600000 %}{{ [s, s]|join }}", "joining would make"),
        ("{{ ('a' * 2000)|replace('a', 'a' * 1000) }}", "`replace` would make"),
        ("{% for t in ticket.tags %}{{ 'ø' * 600000 }}{% endfor %}", "the body would make"),
        (
            "{% for a in 'x' * 200 %}{% for b in 'x' * 200 %}{% endfor %}{% endfor %}",
            "more than 10,000 rounds",
        ),
        ("{{ 1 // 0 }}", "division"),
        ("{{ customer.name|date }}", "Invalid isoformat"),
        ("{{ ticket.tags|date }}", "the date filter needs a date or time"),
        ("{{ ticket.tags|dictsort }}", "has no attribute 'items'"),
    ],
)
def test_escape_attempts_and_runaways_are_refused_when_rendered(source: str, words: str) -> None:
    detail = _refused(source)
    assert detail.startswith("The body of the template cannot be filled in")
    assert words in detail


async def _ticket(session: AsyncSession, **fields: Any) -> Ticket:
    ticket = await session.get(Ticket, await add_ticket(session, **fields))
    assert ticket is not None
    return ticket


async def test_variables_for_a_ticket_without_extras_are_empty(session: AsyncSession) -> None:
    ticket = await _ticket(session, subject="Hjælp", tags=["a"])
    variables = await service.variables_for_ticket(
        session,
        ticket,
        agent_name=None,
        agent_email=None,
        public_base_url="https://hjælp.example",
        ticket_number_prefix="SAG-",
    )
    assert variables["customer"] == {
        "name": "Ærlig Kunde",
        "first_name": "Ærlig",
        "email": "",
        "number": "",
        "language": "",
    }
    assert variables["organisation"] == {"name": ""}
    assert variables["agent"] == {"name": "", "email": ""}
    assert variables["ticket"]["reference"] == f"[SAG-{ticket.number}]"
    assert variables["ticket"]["queue"] == ""
    assert variables["ticket"]["category"] == ""
    assert variables["ticket"]["tags"] == ["a"]
    assert variables["status_link"] == f"https://hjælp.example/status/{ticket.status_token}"


async def _acknowledgement(session: AsyncSession, template_id: int | None, ticket: Ticket) -> Any:
    return await service.render_acknowledgement(
        session,
        template_id,
        ticket,
        sender_name="Kundeservice Nord",
        public_base_url="https://support.example",
        ticket_number_prefix="#",
    )


async def test_acknowledgement_falls_back_to_the_built_in_text(session: AsyncSession) -> None:
    ticket = await _ticket(session)
    inactive = Template(name="Gammel kvittering", body="Gammel", active=False)
    session.add(inactive)
    await session.flush()
    reference = f"[#{ticket.number}]"
    for template_id in (None, inactive.id, 987654321):
        rendered = await _acknowledgement(session, template_id, ticket)
        assert rendered.subject == f"We have received your message {reference}"
        assert rendered.body_text.startswith("Hello Ærlig,\n\nthank you for your message.")
        assert f"https://support.example/status/{ticket.status_token}" in rendered.body_text
        assert f"please keep {reference} in the subject" in rendered.body_text
        assert rendered.body_text.endswith("Kind regards\nKundeservice Nord\n")
        assert rendered.body_html.startswith("<p>Hello Ærlig,</p>")


async def test_acknowledgement_from_a_template(session: AsyncSession) -> None:
    ticket = await _ticket(session)
    own = Template(
        name="Kvittering",
        subject="Tak! {{ ticket.reference }}",
        body="<p>Kære {{ customer.name }}, hilsen {{ agent.name }}</p>",
        body_format=BodyFormat.html,
    )
    no_subject = Template(name="Kvittering uden emne", body="Tak, {{ customer.first_name }}")
    session.add_all([own, no_subject])
    await session.flush()
    rendered = await _acknowledgement(session, own.id, ticket)
    assert rendered.subject == f"Tak! [#{ticket.number}]"
    assert rendered.body_html == "<p>Kære Ærlig Kunde, hilsen Kundeservice Nord</p>"
    assert rendered.body_text.strip() == "Kære Ærlig Kunde, hilsen Kundeservice Nord"
    plain = await _acknowledgement(session, no_subject.id, ticket)
    assert plain.subject == f"We have received your message [#{ticket.number}]"
    assert plain.body_text == "Tak, Ærlig"
