from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, exists, insert, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import SortKey, paginate
from app.customers.models import Customer
from app.organisations.models import Organisation
from app.templates.models import Template, TemplateVersion, template_queues
from app.templates.schemas import TemplateFilters


async def get(session: AsyncSession, template_id: int) -> Template | None:
    return await session.get(Template, template_id)


async def id_by_name(session: AsyncSession, name: str) -> int | None:
    return await session.scalar(select(Template.id).where(Template.name == name))


def _bound_to(queue_ids: Collection[int]) -> ColumnElement[bool]:
    return exists().where(
        template_queues.c.template_id == Template.id, template_queues.c.queue_id.in_(queue_ids)
    )


def _serves(queue_ids: Collection[int]) -> ColumnElement[bool]:
    """Templates serving one of the queues: bound to no queue, or to one of these."""
    unbound = not_(exists().where(template_queues.c.template_id == Template.id))
    return or_(unbound, _bound_to(queue_ids)) if queue_ids else unbound


async def list_templates(
    session: AsyncSession,
    filters: TemplateFilters,
    *,
    visible_queue_ids: Collection[int] | None,
    key: SortKey,
    cursor: str | None,
    limit: int,
) -> list[Template]:
    """``visible_queue_ids``: only templates serving one of these queues (None: all)."""
    statement = select(Template)
    if visible_queue_ids is not None:
        statement = statement.where(_serves(visible_queue_ids))
    if filters.category is not None:
        statement = statement.where(Template.category == filters.category)
    if filters.language is not None:
        statement = statement.where(Template.language == filters.language.lower())
    if filters.queue_id is not None:
        statement = statement.where(_serves([filters.queue_id]))
    if filters.active is not None:
        statement = statement.where(Template.active == filters.active)
    return list(await session.scalars(paginate(statement, key, cursor, limit)))


async def active_serving(
    session: AsyncSession, queue_id: int | None, *, visible_queue_ids: Collection[int] | None
) -> list[Template]:
    """Active templates serving the queue (or, without one, serving every queue)."""
    statement = select(Template).where(
        Template.active, _serves([queue_id] if queue_id is not None else [])
    )
    if visible_queue_ids is not None:
        statement = statement.where(_serves(visible_queue_ids))
    return list(await session.scalars(statement.order_by(Template.name, Template.id)))


async def queue_ids(session: AsyncSession, template_ids: Collection[int]) -> dict[int, list[int]]:
    """The queues of each template (templates without any are left out)."""
    rows = await session.execute(
        select(template_queues.c.template_id, template_queues.c.queue_id)
        .where(template_queues.c.template_id.in_(template_ids))
        .order_by(template_queues.c.template_id, template_queues.c.queue_id)
    )
    bound: dict[int, list[int]] = {}
    for template_id, queue_id in rows:
        bound.setdefault(template_id, []).append(queue_id)
    return bound


async def set_queue_ids(session: AsyncSession, template_id: int, queue_ids: Sequence[int]) -> None:
    await session.execute(
        delete(template_queues).where(template_queues.c.template_id == template_id)
    )
    if queue_ids:
        await session.execute(
            insert(template_queues),
            [{"template_id": template_id, "queue_id": queue_id} for queue_id in queue_ids],
        )


async def list_versions(
    session: AsyncSession, template_id: int, key: SortKey, cursor: str | None, limit: int
) -> list[TemplateVersion]:
    statement = select(TemplateVersion).where(TemplateVersion.template_id == template_id)
    return list(await session.scalars(paginate(statement, key, cursor, limit)))


@dataclass(frozen=True)
class CustomerFacts:
    """What a template may say about a ticket's customer."""

    name: str | None
    customer_number: str | None
    language: str | None
    organisation_name: str | None


async def customer_facts(session: AsyncSession, customer_id: int) -> CustomerFacts:
    result = await session.execute(
        select(
            Customer.name,
            Customer.customer_number,
            Customer.language,
            Organisation.name.label("organisation_name"),
        )
        .outerjoin(Organisation, Organisation.id == Customer.organisation_id)
        .where(Customer.id == customer_id)
    )
    name, customer_number, language, organisation_name = result.one()
    return CustomerFacts(name, customer_number, language, organisation_name)
