"""Transaction-scoped advisory locks: serialise writers of the same values where no
constraint can, or where a check-then-insert would otherwise race."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession


async def lock_values(session: AsyncSession, namespace: str, values: Iterable[str]) -> None:
    """Hold ``pg_advisory_xact_lock(hashtext('<namespace>:<value>'))`` for each value until
    the transaction ends; another transaction locking the same value waits until then.

    The namespace keeps unrelated kinds of values apart (``"customer-email"``,
    ``"queue-address"``). Values are locked sorted, so two writers locking overlapping sets
    cannot deadlock. A session may take a lock it holds again.
    """
    for value in sorted(set(values)):
        key = func.hashtext(f"{namespace}:{value}")
        await session.execute(select(func.pg_advisory_xact_lock(key)))


async def try_session_lock(connection: AsyncConnection, namespace: int, key: int) -> bool:
    """Take ``pg_try_advisory_lock(namespace, key)`` if free; it is held until released or
    until the connection closes (so a process that dies lets go of it)."""
    locked = bool(await connection.scalar(select(func.pg_try_advisory_lock(namespace, key))))
    await connection.commit()
    return locked
