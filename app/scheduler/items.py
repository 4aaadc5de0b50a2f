"""Each due item of a pass in a savepoint of its own: an item that fails (bad data, a bug)
is rolled back alone and pushed back, so the rest of its batch still goes and it cannot hold
up the passes after it, and its error is recorded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

log = structlog.get_logger(__name__)

RETRY_DELAY = timedelta(minutes=5)
"""How much later a failed item is tried again."""

_ERROR_LIMIT = 500

Item = TypeVar("Item")


def describe(exc: BaseException) -> str:
    """The error as the audit log keeps it."""
    return f"{type(exc).__name__}: {exc}"[:_ERROR_LIMIT]


async def handle_each(
    session: AsyncSession,
    items: Sequence[Item],
    handle: Callable[[Item], Awaitable[object]],
    *,
    name: str,
    push_back: Callable[[Item, Exception], Awaitable[None]] | None = None,
) -> int:
    """``handle`` each item in its own savepoint; returns how many succeeded. A failure is
    logged with its traceback, rolled back and given to ``push_back``, which must read an ORM
    item again first (the rollback expired what the savepoint changed)."""
    handled = 0
    for item in items:
        try:
            async with session.begin_nested():
                await handle(item)
        except Exception as exc:
            log.exception("scheduler_item_failed", name=name, item=repr(item))
            if push_back is not None:
                async with session.begin_nested():
                    await push_back(item, exc)
        else:
            handled += 1
    return handled
