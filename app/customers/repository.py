from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.core.pagination import SortKey, paginate
from app.customers.models import Customer, CustomerEmail, CustomerExternalId

_WITH_CHILDREN = (selectinload(Customer.emails), selectinload(Customer.external_ids))


async def get(session: AsyncSession, customer_id: int) -> Customer | None:
    return await session.scalar(
        select(Customer).where(Customer.id == customer_id).options(*_WITH_CHILDREN)
    )


async def get_by_email(session: AsyncSession, email: str) -> Customer | None:
    statement = (
        select(Customer)
        .join(CustomerEmail)
        .where(CustomerEmail.email == email)
        .options(*_WITH_CHILDREN)
    )
    return await session.scalar(statement)


async def get_by_external_id(
    session: AsyncSession, system: str, external_id: str
) -> Customer | None:
    statement = (
        select(Customer)
        .join(CustomerExternalId)
        .where(CustomerExternalId.system == system, CustomerExternalId.external_id == external_id)
        .options(*_WITH_CHILDREN)
    )
    return await session.scalar(statement)


async def email_owners(session: AsyncSession, emails: Iterable[str]) -> dict[str, int]:
    """Which customer holds each address, for those that are taken."""
    statement = select(CustomerEmail.email, CustomerEmail.customer_id).where(
        CustomerEmail.email.in_(list(emails))
    )
    return {email: owner for email, owner in await session.execute(statement)}


async def external_id_owners(
    session: AsyncSession, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Which customer holds each ``(system, external_id)``, for those that are taken."""
    wanted = list(pairs)
    if not wanted:
        return {}
    statement = select(
        CustomerExternalId.system, CustomerExternalId.external_id, CustomerExternalId.customer_id
    ).where(tuple_(CustomerExternalId.system, CustomerExternalId.external_id).in_(wanted))
    return {(system, value): owner for system, value, owner in await session.execute(statement)}


async def id_by_customer_number(session: AsyncSession, customer_number: str) -> int | None:
    return await session.scalar(
        select(Customer.id).where(Customer.customer_number == customer_number)
    )


async def primary_email(session: AsyncSession, customer_id: int) -> str | None:
    return await session.scalar(
        select(CustomerEmail.email)
        .where(CustomerEmail.customer_id == customer_id)
        .order_by(CustomerEmail.position)
        .limit(1)
    )


async def list_customers(
    session: AsyncSession,
    *,
    email: str | None,
    q: str | None,
    organisation_id: int | None,
    customer_number: str | None,
    key: SortKey,
    cursor: str | None,
    limit: int,
) -> list[Customer]:
    statement = select(Customer).options(*_WITH_CHILDREN)
    if email is not None:
        statement = statement.where(
            Customer.id.in_(select(CustomerEmail.customer_id).where(CustomerEmail.email == email))
        )
    if q:
        with_matching_email = select(CustomerEmail.customer_id).where(
            CustomerEmail.email.icontains(q, autoescape=True)
        )
        statement = statement.where(
            or_(Customer.name.icontains(q, autoescape=True), Customer.id.in_(with_matching_email))
        )
    if organisation_id is not None:
        statement = statement.where(Customer.organisation_id == organisation_id)
    if customer_number is not None:
        statement = statement.where(Customer.customer_number == customer_number)
    return list(await session.scalars(paginate(statement, key, cursor, limit)))
