from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal
from app.core.errors import Conflict, Invalid, NotFound, check_version
from app.core.external_ids import upsert, with_path_id
from app.core.pagination import SortKey, next_cursor
from app.core.types import email_domain
from app.core.uniqueness import check_free
from app.customers import repository
from app.customers.models import Customer, CustomerEmail
from app.customers.schemas import CustomerCreate, CustomerRead, CustomerUpdate
from app.events import service as events
from app.events.schemas import (
    CustomerCreated,
    CustomerDeleted,
    CustomerMerged,
    CustomerUpdated,
    field_changes,
)
from app.organisations import service as organisations
from app.tickets import service as ticket_service

ENTITY = "customer"


def _snapshot(customer: Customer) -> audit.Snapshot:
    return audit.snapshot(CustomerRead.model_validate(customer))


async def _get(session: AsyncSession, customer_id: int) -> Customer:
    customer = await repository.get(session, customer_id)
    if customer is None:
        raise NotFound(f"Customer {customer_id} does not exist.")
    return customer


async def _check_emails_free(
    session: AsyncSession, emails: list[str], customer_id: int | None
) -> None:
    """Refuse addresses of other customers; locks them until the transaction ends, so no
    other writer takes one between this check and the flush."""
    await repository.lock_emails(session, emails)
    owners = await repository.email_owners(session, emails)
    for email in emails:
        check_free(
            f"The address {email}",
            owner_id=owners.get(email),
            entity=ENTITY,
            entity_id=customer_id,
        )


async def _check_customer_number_free(
    session: AsyncSession, customer_number: str, customer_id: int | None
) -> None:
    check_free(
        f"The customer number {customer_number!r}",
        owner_id=await repository.id_by_customer_number(session, customer_number),
        entity=ENTITY,
        entity_id=customer_id,
    )


async def _check_organisation(session: AsyncSession, organisation_id: int) -> None:
    if not await organisations.organisation_exists(session, organisation_id):
        raise Invalid(
            f"Organisation {organisation_id} does not exist.", field="body.organisation_id"
        )


def _set_emails(customer: Customer, emails: list[str]) -> bool:
    """Give the customer these addresses in this order; returns whether anything changed.

    Rows of addresses that stay are kept and renumbered: deleting and re-inserting one would
    clash with its own unique constraint inside the flush.
    """
    if [row.email for row in customer.emails] == emails:
        return False
    existing = {row.email: row for row in customer.emails}
    rows = []
    for position, email in enumerate(emails):
        row = existing.get(email) or CustomerEmail(email=email)
        row.position = position
        rows.append(row)
    customer.emails = rows
    return True


async def _create(session: AsyncSession, actor: Principal, data: CustomerCreate) -> Customer:
    await _check_emails_free(session, data.emails, None)
    if data.customer_number is not None:
        await _check_customer_number_free(session, data.customer_number, None)
    if "organisation_id" in data.model_fields_set:
        organisation_id = data.organisation_id
        if organisation_id is not None:
            await _check_organisation(session, organisation_id)
    else:
        organisation_id = await organisations.organisation_id_for_domain(
            session, email_domain(data.emails[0])
        )
    customer = Customer(
        name=data.name,
        phone=data.phone,
        customer_number=data.customer_number,
        organisation_id=organisation_id,
        language=data.language,
        attributes=data.attributes,
        emails=[],
        external_ids=[],
    )
    _set_emails(customer, data.emails)
    await repository.set_external_ids(session, customer, data.external_ids)
    session.add(customer)
    await session.flush()
    await audit.record(
        session, actor, "customer.created", ENTITY, customer.id, after=_snapshot(customer)
    )
    await events.emit(
        session,
        CustomerCreated(customer_id=customer.id, organisation_id=customer.organisation_id),
    )
    return customer


async def find_customer(session: AsyncSession, customer_id: int) -> Customer | None:
    """The customer with addresses and external ids, without a permission check: for rules
    and templates that read a ticket's customer."""
    return await repository.get(session, customer_id)


async def find_many(session: AsyncSession, customer_ids: Collection[int]) -> list[Customer]:
    """The customers among these ids, without a permission check: for side-loading, whose
    caller checks its own."""
    return await repository.get_many(session, customer_ids)


async def get_customer(session: AsyncSession, actor: Principal, customer_id: int) -> Customer:
    actor.require(AgentRole.agent)
    return await _get(session, customer_id)


async def list_customers(
    session: AsyncSession,
    actor: Principal,
    *,
    email: str | None,
    q: str | None,
    organisation_id: int | None,
    customer_number: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Customer], str | None]:
    actor.require(AgentRole.agent)
    key = SortKey(Customer.id, Customer.id, descending=False)
    rows = await repository.list_customers(
        session,
        email=email,
        q=q,
        organisation_id=organisation_id,
        customer_number=customer_number,
        key=key,
        cursor=cursor,
        limit=limit,
    )
    return next_cursor(rows, key, limit)


async def lookup_customer(
    session: AsyncSession,
    actor: Principal,
    *,
    email: str | None,
    system: str | None,
    external_id: str | None,
) -> Customer:
    """By (normalised) email address, or by the id in another system."""
    actor.require(AgentRole.agent)
    if email is not None and system is None and external_id is None:
        customer = await repository.get_by_email(session, email)
        if customer is None:
            raise NotFound(f"No customer has the address {email}.")
        return customer
    if email is None and system is not None and external_id is not None:
        return await repository.get_by_external_id(session, system, external_id)
    raise Invalid("Look up by `email`, or by both `system` and `external_id`.", field="query")


async def create_customer(
    session: AsyncSession, actor: Principal, data: CustomerCreate
) -> Customer:
    actor.require(AgentRole.agent)
    return await _create(session, actor, data)


async def update_customer(
    session: AsyncSession,
    actor: Principal,
    customer_id: int,
    changes: CustomerUpdate,
    expected_version: int | None,
) -> Customer:
    actor.require(AgentRole.agent)
    customer = await _get(session, customer_id)
    check_version(customer.version, expected_version)
    before = _snapshot(customer)
    values = changes.model_dump(exclude_unset=True)
    if values.get("blocked", customer.blocked) != customer.blocked:
        actor.require(AgentRole.supervisor)
    emails = values.pop("emails", None)
    external_ids = values.pop("external_ids", None)
    if values.get("customer_number") is not None:
        await _check_customer_number_free(session, values["customer_number"], customer.id)
    if values.get("organisation_id") is not None:
        await _check_organisation(session, values["organisation_id"])
    children_changed = False
    if emails is not None:
        await _check_emails_free(session, emails, customer.id)
        children_changed |= _set_emails(customer, emails)
    if external_ids is not None:
        children_changed |= await repository.set_external_ids(session, customer, external_ids)
    for field, value in values.items():
        setattr(customer, field, value)
    if children_changed:
        customer.touch()
    await session.flush()
    old, new = audit.changed_fields(before, _snapshot(customer))
    await audit.record(
        session, actor, "customer.updated", ENTITY, customer.id, before=old, after=new
    )
    changed = field_changes(old, new)
    if changed:
        await events.emit(session, CustomerUpdated(customer_id=customer.id, fields=sorted(changed)))
    return customer


async def upsert_by_external_id(
    session: AsyncSession,
    actor: Principal,
    system: str,
    external_id: str,
    data: CustomerCreate,
    expected_version: int | None,
) -> tuple[Customer, bool]:
    """Create the customer with that external id, or update the one that has it (only the
    fields the body gives; `external_ids`, when given, replace the others but the path's id
    stays). Returns the customer and whether it was created."""
    actor.require(AgentRole.agent)
    ids = with_path_id(system, external_id, data.external_ids)
    owner_id = await repository.lock_external_id(session, system, external_id)
    return await upsert(
        data,
        ids,
        owner_id,
        expected_version=expected_version,
        missing=f"customer with the {system} id {external_id!r}",
        create=lambda body: create_customer(session, actor, body),
        update=lambda owner, values: update_customer(
            session, actor, owner, CustomerUpdate.model_validate(values), expected_version
        ),
    )


@dataclass(frozen=True)
class MergeResult:
    customer: Customer
    tickets_moved: int
    dropped_external_ids: dict[str, str]


async def merge_customers(
    session: AsyncSession, actor: Principal, customer_id: int, into_customer_id: int
) -> MergeResult:
    """Move the customer's tickets (and the messages they wrote), addresses, external ids and
    organisation (when the other has none) to the other customer, then delete them. Where both
    have an id in the same system the other's is kept and this one's dropped."""
    actor.require(AgentRole.supervisor)
    if customer_id == into_customer_id:
        raise Invalid("A customer cannot be merged into itself.", field="body.into_customer_id")
    # Lock both in id order, so two merges of the same pair cannot deadlock.
    locked = {}
    for locked_id in sorted((customer_id, into_customer_id)):
        customer = await repository.get(session, locked_id, for_update=True)
        if customer is None:
            raise NotFound(f"Customer {locked_id} does not exist.")
        locked[locked_id] = customer
    source, target = locked[customer_id], locked[into_customer_id]
    before = _snapshot(target)
    tickets_moved = await ticket_service.move_customer(session, source.id, target.id)
    # The rows move (an update of their owner): new rows would clash with the old ones'
    # unique keys inside the flush.
    for email in list(source.emails):
        source.emails.remove(email)
        email.position = len(target.emails)
        target.emails.append(email)
    taken = {row.system for row in target.external_ids}
    dropped = {r.system: r.external_id for r in source.external_ids if r.system in taken}
    for row in [r for r in source.external_ids if r.system not in taken]:
        source.external_ids.remove(row)
        target.external_ids.append(row)
    if target.organisation_id is None:
        target.organisation_id = source.organisation_id
    target.touch()
    await session.flush()
    await session.delete(source)
    await session.flush()
    # Ids and counts only: the audit log must hold no personal data of the merged customer.
    await audit.record(
        session,
        actor,
        "customer.merged",
        ENTITY,
        target.id,
        after={
            "merged_customer_id": customer_id,
            "tickets_moved": tickets_moved,
            "dropped_external_id_systems": sorted(dropped),
        },
    )
    await audit.record(
        session,
        actor,
        "customer.updated",
        ENTITY,
        target.id,
        before=before,
        after=_snapshot(target),
    )
    await events.emit(
        session,
        CustomerMerged(
            customer_id=target.id, merged_customer_id=customer_id, tickets_moved=tickets_moved
        ),
    )
    return MergeResult(target, tickets_moved, dropped)


async def delete_customer(
    session: AsyncSession, actor: Principal, customer_id: int, expected_version: int | None
) -> None:
    actor.require(AgentRole.supervisor)
    customer = await _get(session, customer_id)
    check_version(customer.version, expected_version)
    tickets = await ticket_service.count_for_customer(session, customer_id)
    if tickets:
        raise Conflict(
            f"Customer {customer_id} has {tickets} ticket(s) and cannot be deleted while they "
            "exist.",
            ticket_count=tickets,
        )
    await session.delete(customer)
    await session.flush()
    # Only the id: the audit log outlives the customer, and must hold no personal data that
    # could then never be erased.
    await audit.record(
        session,
        actor,
        "customer.deleted",
        ENTITY,
        customer_id,
        before={"id": customer_id, "ticket_count": 0},
    )
    await events.emit(session, CustomerDeleted(customer_id=customer_id))


async def resolve_customer(
    session: AsyncSession,
    actor: Principal,
    *,
    customer_id: int | None,
    email: str | None,
    name: str | None,
) -> Customer:
    """The customer a ticket is for: by id, else by (normalised) email, else a new customer
    with that email and name.

    No role is checked here: the caller (ticket creation, ingestion) has checked its own
    permission, and creating the customer is part of that action.
    """
    if customer_id is not None:
        customer = await repository.get(session, customer_id)
        if customer is None:
            raise Invalid(f"Customer {customer_id} does not exist.", field="body.customer.id")
        return customer
    if email is None:
        raise Invalid("Give the customer's id or email.", field="body.customer")
    customer = await repository.get_by_email(session, email)
    if customer is not None:
        return customer
    # A new address: another request may be creating its customer right now. Wait for it
    # (the lock), then look again: it may have committed the customer meanwhile.
    await repository.lock_emails(session, [email])
    customer = await repository.get_by_email(session, email)
    if customer is not None:
        return customer
    # Built unvalidated: the caller's schema validated the address, and `name` may be "".
    data = CustomerCreate.model_construct(name=name or None, emails=[email])
    return await _create(session, actor, data)


async def release_organisation(session: AsyncSession, organisation_id: int) -> list[int]:
    """Unlink the customers of an organisation that is being deleted, each as a change of the
    customer (its version moves) with a ``customer.updated``; returns their ids, for the
    caller's audit event."""
    released = await repository.release_organisation(session, organisation_id)
    await events.emit_many(
        session,
        [
            CustomerUpdated(customer_id=customer_id, fields=["organisation_id"])
            for customer_id in released
        ],
    )
    return released


async def primary_email(session: AsyncSession, customer_id: int) -> str | None:
    return await repository.primary_email(session, customer_id)


async def blocked_among(session: AsyncSession, addresses: Iterable[str]) -> frozenset[str]:
    """Those of the addresses (lower-cased) that belong to a blocked customer: no mail may go
    to them (no permission check: for sending)."""
    return await repository.blocked_emails(session, {address.lower() for address in addresses})


async def customer_id_for_email(session: AsyncSession, email: str) -> int | None:
    """Which customer an address belongs to, if any (no permission check: for ingestion)."""
    return (await repository.email_owners(session, [email.lower()])).get(email.lower())
