"""One rule for unique values (a name, a number, an address, an external id)."""

from __future__ import annotations

from collections.abc import Collection

from app.core.errors import Conflict


def check_free(what: str, *, owner_id: int | None, entity: str, entity_id: int | None) -> None:
    """Refuse ``what`` (e.g. ``"The name 'Support'"``) when another ``entity`` holds it.

    ``owner_id`` is who holds the value now (``None``: nobody), ``entity_id`` who wants it
    (``None``: one being created). The unique constraint would refuse it too, but only with
    an anonymous 409 at flush; this one names the holder, also as ``<entity>_id``.
    """
    if owner_id is not None and owner_id != entity_id:
        raise Conflict(
            f"{what} belongs to {entity} {owner_id} already.", **{f"{entity}_id": owner_id}
        )


def check_addresses_free(
    wanted: Collection[str],
    *,
    holder: tuple[int, str, Collection[str]] | None,
    entity: str,
) -> None:
    """Refuse mail addresses another ``entity`` (a queue, a mailbox) serves already.

    ``holder`` is the first other one serving any of them: (id, name, its addresses).
    """
    if holder is None:
        return
    holder_id, holder_name, held = holder
    taken = sorted(set(wanted) & set(held))
    raise Conflict(
        f"The address {', '.join(taken)} is served by the {entity} {holder_name!r} "
        f"(id {holder_id}) already; remove it there first.",
        **{f"{entity}_id": holder_id},
        addresses=taken,
    )
