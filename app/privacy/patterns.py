"""The configured patterns masking applies outside messages (subjects, custom fields,
attributes, follow-up notes), compiled once per process. Each request first compares a cheap
stamp of the pattern table with the one the cache was loaded at, so a pattern created, changed,
disabled or deleted by any process applies to the next request of every process."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

import regex  # type: ignore[import-untyped]  # no stubs published
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.privacy import repository
from app.privacy.detectors import CustomPattern, set_configured_patterns
from app.privacy.models import SensitivePattern

Stamp = tuple[int, int, int | None, datetime | None, int | None]

_loaded: Stamp | None = None


@lru_cache(maxsize=256)
def compiled(source: str) -> regex.Pattern[str]:
    return regex.compile(source)


async def enabled(session: AsyncSession) -> list[CustomPattern]:
    return [
        CustomPattern(p.name, compiled(p.regex)) for p in await repository.enabled_patterns(session)
    ]


async def _stamp(session: AsyncSession) -> Stamp:
    """Changes with every insert (count, highest id), update (enabled ones, versions, latest
    change) and delete (count, versions) of a pattern."""
    row = (
        await session.execute(
            select(
                func.count(SensitivePattern.id),
                func.count(SensitivePattern.id).filter(SensitivePattern.enabled.is_(True)),
                func.max(SensitivePattern.id),
                func.max(SensitivePattern.updated_at),
                func.sum(SensitivePattern.version),
            )
        )
    ).one()
    count, enabled_count, highest, latest, versions = row
    return (
        int(count),
        int(enabled_count),
        highest,
        latest,
        None if versions is None else int(versions),
    )


async def refresh(session: AsyncSession) -> None:
    """Reload the configured patterns masking applies if the table changed since they were
    loaded (one small aggregate query when it did not)."""
    global _loaded
    stamp = await _stamp(session)
    if stamp != _loaded:
        # Two requests may both load after a change: the same result, either one kept.
        set_configured_patterns(await enabled(session))
        _loaded = stamp


def forget() -> None:
    """Drop what was loaded: the next ``refresh`` reads the patterns again."""
    global _loaded
    _loaded = None
    set_configured_patterns(())
