from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.audit import service as audit
from app.auth.schemas import Principal
from app.core.errors import Conflict, Invalid, NotFound, check_version
from app.core.external_ids import upsert, with_path_id
from app.core.pagination import SortKey, next_cursor
from app.customers import service as customers
from app.events import service as events
from app.events.schemas import (
    OrganisationCreated,
    OrganisationDeleted,
    OrganisationUpdated,
    field_changes,
)
from app.organisations import repository
from app.organisations.models import Organisation
from app.organisations.schemas import OrganisationCreate, OrganisationRead, OrganisationUpdate

ENTITY = "organisation"
_AMBIGUOUS_SHOWN = 10


def _snapshot(organisation: Organisation) -> audit.Snapshot:
    return audit.snapshot(OrganisationRead.model_validate(organisation))


async def _get(session: AsyncSession, organisation_id: int) -> Organisation:
    organisation = await repository.get(session, organisation_id)
    if organisation is None:
        raise NotFound(f"Organisation {organisation_id} does not exist.")
    return organisation


async def find_organisation(session: AsyncSession, organisation_id: int) -> Organisation | None:
    """The organisation with its external ids, without a permission check: for rules."""
    return await repository.get(session, organisation_id)


async def get_organisation(
    session: AsyncSession, actor: Principal, organisation_id: int
) -> Organisation:
    actor.require(AgentRole.agent)
    return await _get(session, organisation_id)


async def organisation_exists(session: AsyncSession, organisation_id: int) -> bool:
    return await repository.exists(session, organisation_id)


async def organisation_id_for_domain(session: AsyncSession, domain: str) -> int | None:
    """The organisation with this mail domain, when exactly one has it."""
    ids = await repository.ids_with_domain(session, domain, limit=2)
    return ids[0] if len(ids) == 1 else None


async def list_organisations(
    session: AsyncSession,
    actor: Principal,
    *,
    q: str | None,
    domain: str | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Organisation], str | None]:
    actor.require(AgentRole.agent)
    key = SortKey(Organisation.id, Organisation.id, descending=False)
    rows = await repository.list_organisations(
        session, q=q, domain=domain, key=key, cursor=cursor, limit=limit
    )
    return next_cursor(rows, key, limit)


async def lookup_organisation(
    session: AsyncSession,
    actor: Principal,
    *,
    domain: str | None,
    system: str | None,
    external_id: str | None,
) -> Organisation:
    """By mail domain, or by the id in another system."""
    actor.require(AgentRole.agent)
    if domain is not None and system is None and external_id is None:
        ids = await repository.ids_with_domain(session, domain, limit=_AMBIGUOUS_SHOWN)
        if not ids:
            raise NotFound(f"No organisation has the domain {domain}.")
        if len(ids) > 1:
            raise Conflict(
                f"Several organisations have the domain {domain}: "
                f"{', '.join(map(str, ids))}; look one up by id instead.",
                organisation_ids=ids,
            )
        return await _get(session, ids[0])
    if domain is None and system is not None and external_id is not None:
        return await repository.get_by_external_id(session, system, external_id)
    raise Invalid("Look up by `domain`, or by both `system` and `external_id`.", field="query")


async def create_organisation(
    session: AsyncSession, actor: Principal, data: OrganisationCreate
) -> Organisation:
    actor.require(AgentRole.supervisor)
    organisation = Organisation(
        name=data.name, domains=data.domains, attributes=data.attributes, external_ids=[]
    )
    await repository.set_external_ids(session, organisation, data.external_ids)
    session.add(organisation)
    await session.flush()
    await audit.record(
        session,
        actor,
        "organisation.created",
        ENTITY,
        organisation.id,
        after=_snapshot(organisation),
    )
    await events.emit(session, OrganisationCreated(organisation_id=organisation.id))
    return organisation


async def update_organisation(
    session: AsyncSession,
    actor: Principal,
    organisation_id: int,
    changes: OrganisationUpdate,
    expected_version: int | None,
) -> Organisation:
    actor.require(AgentRole.supervisor)
    organisation = await _get(session, organisation_id)
    check_version(organisation.version, expected_version)
    before = _snapshot(organisation)
    values = changes.model_dump(exclude_unset=True)
    external_ids = values.pop("external_ids", None)
    for field, value in values.items():
        setattr(organisation, field, value)
    if external_ids is not None and await repository.set_external_ids(
        session, organisation, external_ids
    ):
        organisation.touch()
    await session.flush()
    old, new = audit.changed_fields(before, _snapshot(organisation))
    await audit.record(
        session, actor, "organisation.updated", ENTITY, organisation.id, before=old, after=new
    )
    changed = field_changes(old, new)
    if changed:
        await events.emit(
            session, OrganisationUpdated(organisation_id=organisation.id, fields=sorted(changed))
        )
    return organisation


async def upsert_by_external_id(
    session: AsyncSession,
    actor: Principal,
    system: str,
    external_id: str,
    data: OrganisationCreate,
    expected_version: int | None,
) -> tuple[Organisation, bool]:
    """Create the organisation with that external id, or update the one that has it (only
    the fields the body gives; `external_ids`, when given, replace the others but the path's
    id stays). Returns the organisation and whether it was created."""
    actor.require(AgentRole.supervisor)
    ids = with_path_id(system, external_id, data.external_ids)
    owner_id = await repository.lock_external_id(session, system, external_id)
    return await upsert(
        data,
        ids,
        owner_id,
        expected_version=expected_version,
        missing=f"organisation with the {system} id {external_id!r}",
        create=lambda body: create_organisation(session, actor, body),
        update=lambda owner, values: update_organisation(
            session, actor, owner, OrganisationUpdate.model_validate(values), expected_version
        ),
    )


async def delete_organisation(
    session: AsyncSession, actor: Principal, organisation_id: int, expected_version: int | None
) -> None:
    """Delete an organisation; its customers stay, unlinked, each as a change of the customer
    (the foreign key's SET NULL would change them unseen)."""
    actor.require(AgentRole.supervisor)
    organisation = await _get(session, organisation_id)
    check_version(organisation.version, expected_version)
    customer_ids = await customers.release_organisation(session, organisation.id)
    # The company's name and domains, not its free-form attributes: they may name people,
    # and the audit log outlives the organisation.
    before = {
        "id": organisation.id,
        "name": organisation.name,
        "domains": organisation.domains,
        "customer_ids": customer_ids,
    }
    await session.delete(organisation)
    await session.flush()
    await audit.record(
        session, actor, "organisation.deleted", ENTITY, organisation_id, before=before
    )
    await events.emit(
        session,
        OrganisationDeleted(organisation_id=organisation_id, customers_unlinked=len(customer_ids)),
    )
