"""Canned replies: kept centrally with every saved state, filled in for a ticket in a sandbox."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import service as agents
from app.agents.models import AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal
from app.core.errors import Invalid, NotFound, check_version
from app.core.pagination import SortKey, next_cursor
from app.core.uniqueness import check_free
from app.customers import service as customers
from app.ingest.pipeline import ticket_reference
from app.privacy.detectors import mask_text
from app.queues import service as queues
from app.queues.models import CustomerFields
from app.status.service import status_link
from app.templates import repository
from app.templates.models import BodyFormat, Template, TemplateVersion
from app.templates.rendering import Rendered, check_source, render_source
from app.templates.schemas import (
    SuggestionMatch,
    TemplateCreate,
    TemplateFilters,
    TemplateRead,
    TemplateUpdate,
    TemplateView,
)
from app.tickets import service as tickets
from app.tickets.models import Ticket

ENTITY = "template"
_BY_NAME = SortKey(Template.name, Template.id, descending=False)
_NEWEST_FIRST = SortKey(TemplateVersion.version, TemplateVersion.id, descending=True)
_SUGGESTIONS = 20

DEFAULT_ACKNOWLEDGEMENT_SUBJECT = "We have received your message {{ ticket.reference }}"
DEFAULT_ACKNOWLEDGEMENT_BODY = """\
Hello{% if customer.first_name %} {{ customer.first_name }}{% endif %},

thank you for your message. We have received it and registered it as ticket \
{{ ticket.reference }}; we will answer as soon as we can.

You can follow your ticket here:
{{ status_link }}

When you write to us again about this matter, please keep {{ ticket.reference }} in the \
subject, so your message reaches the same ticket.

Kind regards
{{ agent.name or "Customer service" }}
"""


def _snapshot(view: TemplateView) -> audit.Snapshot:
    return audit.snapshot(TemplateRead.model_validate(view))


async def _view(session: AsyncSession, template: Template) -> TemplateView:
    (view,) = await _views(session, [template])
    return view


async def _views(session: AsyncSession, templates: list[Template]) -> list[TemplateView]:
    bound = await repository.queue_ids(session, [t.id for t in templates])
    return [TemplateView(t, bound.get(t.id, [])) for t in templates]


def _visible_queue_ids(actor: Principal) -> frozenset[int] | None:
    """External partners see the templates serving their granted queues; others see all."""
    return actor.granted_queue_ids if actor.is_external else None


async def find_template(session: AsyncSession, template_id: int) -> Template | None:
    """The template, without a permission check: for other domains checking a reference."""
    return await repository.get(session, template_id)


async def get_template(session: AsyncSession, actor: Principal, template_id: int) -> TemplateView:
    """The template, if the actor may see it; a hidden one is reported as missing."""
    template = await repository.get(session, template_id)
    if template is None:
        raise NotFound(f"Template {template_id} does not exist.")
    view = await _view(session, template)
    if view.queue_ids and not any(actor.can_see_queue(q) for q in view.queue_ids):
        raise NotFound(f"Template {template_id} does not exist.")
    return view


async def list_templates(
    session: AsyncSession,
    actor: Principal,
    filters: TemplateFilters,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[TemplateView], str | None]:
    rows = await repository.list_templates(
        session,
        filters,
        visible_queue_ids=_visible_queue_ids(actor),
        key=_BY_NAME,
        cursor=cursor,
        limit=limit,
    )
    kept, cursor_after = next_cursor(rows, _BY_NAME, limit)
    return await _views(session, kept), cursor_after


async def _check_name_free(session: AsyncSession, name: str, template_id: int | None) -> None:
    owner_id = await repository.id_by_name(session, name)
    check_free(f"The name {name!r}", owner_id=owner_id, entity=ENTITY, entity_id=template_id)


async def _check_queues_exist(session: AsyncSession, queue_ids: list[int]) -> None:
    for queue_id in queue_ids:
        if await queues.find_queue(session, queue_id) is None:
            raise Invalid(f"Queue {queue_id} does not exist.", field="body.queue_ids")


def _check_sources(values: dict[str, Any], body_format: BodyFormat) -> None:
    """Refuse a subject or body (among ``values``) that cannot render, pointing at it."""
    if values.get("subject") is not None:
        check_source(values["subject"], html=False, field="body.subject")
    if "body" in values:
        check_source(values["body"], html=body_format is BodyFormat.html, field="body.body")


async def _save_version(session: AsyncSession, actor: Principal, view: TemplateView) -> None:
    template = view.template
    session.add(
        TemplateVersion(
            template_id=template.id,
            version=template.version,
            name=template.name,
            category=template.category,
            language=template.language,
            subject=template.subject,
            body=template.body,
            body_format=template.body_format,
            active=template.active,
            queue_ids=view.queue_ids,
            saved_by_agent_id=actor.agent_id,
        )
    )
    await session.flush()


async def create_template(
    session: AsyncSession, actor: Principal, data: TemplateCreate
) -> TemplateView:
    actor.require(AgentRole.supervisor)
    await _check_name_free(session, data.name, None)
    await _check_queues_exist(session, data.queue_ids)
    _check_sources(data.model_dump(), data.body_format)
    template = Template(**data.model_dump(exclude={"queue_ids"}))
    session.add(template)
    await session.flush()
    await repository.set_queue_ids(session, template.id, data.queue_ids)
    view = TemplateView(template, data.queue_ids)
    await _save_version(session, actor, view)
    await audit.record(
        session, actor, "template.created", ENTITY, template.id, after=_snapshot(view)
    )
    return view


async def update_template(
    session: AsyncSession,
    actor: Principal,
    template_id: int,
    changes: TemplateUpdate,
    expected_version: int | None,
) -> TemplateView:
    """Apply the changes; a change of anything (the queues too) is a new version."""
    actor.require(AgentRole.supervisor)
    view = await get_template(session, actor, template_id)
    template = view.template
    check_version(template.version, expected_version)
    values = changes.model_dump(exclude_unset=True)
    if "name" in values:
        await _check_name_free(session, values["name"], template.id)
    queue_ids = values.pop("queue_ids", view.queue_ids)
    await _check_queues_exist(session, queue_ids)
    body_format = values.get("body_format", template.body_format)
    if "body_format" in values:
        values.setdefault("body", template.body)
    _check_sources(values, body_format)
    before = _snapshot(view)
    for field, value in values.items():
        setattr(template, field, value)
    if queue_ids != view.queue_ids:
        await repository.set_queue_ids(session, template.id, queue_ids)
        template.touch()
    await session.flush()
    view = TemplateView(template, queue_ids)
    if template.version != before["version"]:
        await _save_version(session, actor, view)
    await audit.record(
        session,
        actor,
        "template.updated",
        ENTITY,
        template.id,
        before=before,
        after=_snapshot(view),
    )
    return view


async def delete_template(
    session: AsyncSession, actor: Principal, template_id: int, expected_version: int | None
) -> None:
    """Delete the template and its versions; replies written from it keep their text."""
    actor.require(AgentRole.supervisor)
    view = await get_template(session, actor, template_id)
    check_version(view.template.version, expected_version)
    before = _snapshot(view)
    await session.delete(view.template)
    await session.flush()
    await audit.record(session, actor, "template.deleted", ENTITY, template_id, before=before)


async def list_versions(
    session: AsyncSession, actor: Principal, template_id: int, *, cursor: str | None, limit: int
) -> tuple[list[TemplateVersion], str | None]:
    """The template's saved states, newest first."""
    view = await get_template(session, actor, template_id)
    rows = await repository.list_versions(session, view.id, _NEWEST_FIRST, cursor, limit)
    return next_cursor(rows, _NEWEST_FIRST, limit)


def _empty_if_none(value: str | None) -> str:
    return value if value is not None else ""


async def variables_for_ticket(
    session: AsyncSession,
    ticket: Ticket,
    *,
    agent_name: str | None,
    agent_email: str | None,
    public_base_url: str,
    ticket_number_prefix: str,
) -> dict[str, Any]:
    """What a template may use about the ticket, as plain values (no permission check)."""
    customer = await repository.customer_facts(session, ticket.customer_id)
    queue = await queues.find_queue(session, ticket.queue_id) if ticket.queue_id else None
    name = _empty_if_none(customer.name)
    return {
        "customer": {
            "name": name,
            "first_name": name.split()[0] if name.split() else "",
            "email": _empty_if_none(await customers.primary_email(session, ticket.customer_id)),
            "number": _empty_if_none(customer.customer_number),
            "language": _empty_if_none(customer.language),
        },
        "organisation": {"name": _empty_if_none(customer.organisation_name)},
        "ticket": {
            "number": ticket.number,
            "reference": ticket_reference(ticket_number_prefix, ticket.number),
            "subject": ticket.subject,
            "status": ticket.status.value,
            "priority": ticket.priority.value,
            "category": _empty_if_none(ticket.category),
            "queue": queue.name if queue is not None else "",
            "tags": list(ticket.tags),
            "created_at": ticket.created_at,
            "custom_fields": dict(ticket.custom_fields),
        },
        "agent": {"name": _empty_if_none(agent_name), "email": _empty_if_none(agent_email)},
        # Filled in for an incident's status updates; empty elsewhere, so one template serves.
        "incident": {"title": "", "status_text": "", "next_update_at": None},
        "status_link": status_link(public_base_url, ticket.status_token),
    }


def _blank_for_partner(variables: dict[str, Any], shown: CustomerFields) -> None:
    """Empty what the partner's grant does not show of the customer (as the ticket API
    reduces the customer for them), and the status link, which opens the customer's own page.
    Empty rather than refused, so one template serves staff and partners alike."""
    hidden = {"number", "language"}
    if shown is not CustomerFields.name_and_email:
        hidden.add("email")
    if shown is CustomerFields.none:
        hidden |= {"name", "first_name"}
    variables["customer"].update(dict.fromkeys(hidden, ""))
    variables["organisation"]["name"] = ""
    variables["status_link"] = ""


async def render_for_ticket(
    session: AsyncSession,
    actor: Principal,
    template_id: int,
    ticket_id: int,
    *,
    public_base_url: str,
    ticket_number_prefix: str,
    incident: Mapping[str, Any] | None = None,
    masked: bool = False,
) -> Rendered:
    """The template filled in for a ticket the actor may see, as the actor's reply; with
    ``incident``, the values of the incident the ticket gets a status update of.

    An outside partner gets only what their grant shows of the customer, in a preview and in
    the reply they send alike: they read that reply afterwards. ``masked`` (a preview shown in
    the API, not mail to the customer) masks the numbers found in the ticket's subject."""
    template = (await get_template(session, actor, template_id)).template
    ticket = await tickets.get_ticket(session, actor, ticket_id)
    agent = await agents.find_by_id(session, actor.agent_id) if actor.agent_id else None
    variables = await variables_for_ticket(
        session,
        ticket,
        agent_name=agent.name if agent else None,
        agent_email=agent.email if agent else None,
        public_base_url=public_base_url,
        ticket_number_prefix=ticket_number_prefix,
    )
    if incident is not None:
        variables["incident"] = dict(incident)
    if actor.is_external:
        shown = await queues.customer_fields(session, actor)
        _blank_for_partner(variables, tickets.partner_customer_fields(shown, ticket))
    if masked:
        variables["ticket"]["subject"] = mask_text(ticket.subject)
    return render_source(template.subject, template.body, template.body_format, variables)


async def render_acknowledgement(
    session: AsyncSession,
    template_id: int | None,
    ticket: Ticket,
    *,
    sender_name: str | None,
    public_base_url: str,
    ticket_number_prefix: str,
) -> Rendered:
    """The automatic answer to a new ticket: the given template if it exists and is active,
    else the built-in one. Without a subject of its own, the template gets the built-in
    subject, which carries the ticket number for threading the customer's replies."""
    template = await repository.get(session, template_id) if template_id is not None else None
    variables = await variables_for_ticket(
        session,
        ticket,
        agent_name=sender_name,
        agent_email=None,
        public_base_url=public_base_url,
        ticket_number_prefix=ticket_number_prefix,
    )
    if template is None or not template.active:
        return render_source(
            DEFAULT_ACKNOWLEDGEMENT_SUBJECT,
            DEFAULT_ACKNOWLEDGEMENT_BODY,
            BodyFormat.text,
            variables,
        )
    subject = template.subject if template.subject is not None else DEFAULT_ACKNOWLEDGEMENT_SUBJECT
    return render_source(subject, template.body, template.body_format, variables)


def _same_language(a: str | None, b: str | None) -> bool:
    """``da`` matches ``da-DK``: the primary language decides."""
    if not a or not b:
        return False
    return a.split("-")[0].lower() == b.split("-")[0].lower()


async def suggestions(
    session: AsyncSession, actor: Principal, ticket_id: int
) -> list[tuple[TemplateView, list[SuggestionMatch]]]:
    """Active templates for the ticket, best first: bound to its queue, then of its category,
    then in the customer's language. Templates bound to other queues are left out."""
    ticket = await tickets.get_ticket(session, actor, ticket_id)
    language = (await repository.customer_facts(session, ticket.customer_id)).language
    rows = await repository.active_serving(
        session, ticket.queue_id, visible_queue_ids=_visible_queue_ids(actor)
    )
    ranked: list[tuple[TemplateView, list[SuggestionMatch]]] = []
    for view in await _views(session, rows):
        checks = {
            SuggestionMatch.queue: ticket.queue_id in view.queue_ids,
            SuggestionMatch.category: bool(ticket.category)
            and view.template.category == ticket.category,
            SuggestionMatch.language: _same_language(view.template.language, language),
        }
        ranked.append((view, [match for match, hit in checks.items() if hit]))
    ranked.sort(key=lambda item: [match not in item[1] for match in SuggestionMatch])
    return ranked[:_SUGGESTIONS]
