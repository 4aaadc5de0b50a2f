from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.core.external_ids import ExternalIdStore
from app.core.pagination import SortKey, paginate
from app.customers.models import Customer, CustomerEmail, CustomerExternalId
from app.db.locks import lock_values

_WITH_CHILDREN = (selectinload(Customer.emails), selectinload(Customer.external_ids))
_EXTERNAL_IDS = ExternalIdStore(
    "customer", Customer, CustomerExternalId, CustomerExternalId.customer_id
)


async def get(
    session: AsyncSession, customer_id: int, *, for_update: bool = False
) -> Customer | None:
    """The customer with addresses and external ids; ``for_update`` locks its row."""
    statement = select(Customer).where(Customer.id == customer_id).options(*_WITH_CHILDREN)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(statement)


async def get_many(session: AsyncSession, customer_ids: Collection[int]) -> list[Customer]:
    statement = select(Customer).where(Customer.id.in_(customer_ids)).options(*_WITH_CHILDREN)
    return list(await session.scalars(statement))


async def get_by_email(session: AsyncSession, email: str) -> Customer | None:
    statement = (
        select(Customer)
        .join(CustomerEmail)
        .where(CustomerEmail.email == email)
        .options(*_WITH_CHILDREN)
    )
    return await session.scalar(statement)


async def get_by_external_id(session: AsyncSession, system: str, external_id: str) -> Customer:
    """The customer with that id in the other system; NotFound when none has it."""
    return await _EXTERNAL_IDS.get_owner(session, system, external_id, options=_WITH_CHILDREN)


async def lock_external_id(session: AsyncSession, system: str, external_id: str) -> int | None:
    """The id of the customer holding that external id, if any, locked against other writers
    of the same id until the transaction ends."""
    return await _EXTERNAL_IDS.lock_and_find(session, system, external_id)


async def set_external_ids(
    session: AsyncSession, customer: Customer, wanted: Mapping[str, str]
) -> bool:
    """Give the customer exactly these ids (system -> id); Conflict when another customer
    holds one. Returns whether anything changed."""
    return await _EXTERNAL_IDS.sync(session, customer.external_ids, wanted, entity_id=customer.id)


async def lock_emails(session: AsyncSession, emails: Iterable[str]) -> None:
    """Serialise writers of the same addresses until the transaction ends: two requests
    creating a customer for one new address would both find none, and one insert would hit
    the unique constraint. Take it before looking the addresses up."""
    await lock_values(session, "customer-email", emails)


async def email_owners(session: AsyncSession, emails: Iterable[str]) -> dict[str, int]:
    """Which customer holds each address, for those that are taken."""
    statement = select(CustomerEmail.email, CustomerEmail.customer_id).where(
        CustomerEmail.email.in_(list(emails))
    )
    return {email: owner for email, owner in await session.execute(statement)}


async def blocked_emails(session: AsyncSession, emails: Iterable[str]) -> frozenset[str]:
    """Those of the addresses that belong to a blocked customer."""
    statement = (
        select(CustomerEmail.email)
        .join(Customer)
        .where(CustomerEmail.email.in_(list(emails)), Customer.blocked)
    )
    return frozenset(await session.scalars(statement))


async def id_by_customer_number(session: AsyncSession, customer_number: str) -> int | None:
    return await session.scalar(
        select(Customer.id).where(Customer.customer_number == customer_number)
    )


async def release_organisation(session: AsyncSession, organisation_id: int) -> list[int]:
    """Unlink the customers of an organisation that is going away, as a change of each
    customer (version and ``updated_at`` move); returns their ids."""
    changed = await session.scalars(
        update(Customer)
        .where(Customer.organisation_id == organisation_id)
        .values(organisation_id=None, version=Customer.version + 1)
        .returning(Customer.id)
        .execution_options(synchronize_session="fetch")
    )
    return sorted(changed)


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
