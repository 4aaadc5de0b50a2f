"""One rule for unique values (a name, a number, an address, an external id)."""

from __future__ import annotations

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
