"""Keyset (cursor) pagination: stable under inserts, fast at any depth."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import DateTime, Select, literal, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from app.core.errors import Invalid

ItemT = TypeVar("ItemT")

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True)
class SortKey:
    """Order by a NOT NULL ``column`` (then by ``id`` to break ties), up or down."""

    column: InstrumentedAttribute[Any]
    id_column: InstrumentedAttribute[int]
    descending: bool

    @property
    def name(self) -> str:
        """Written into cursors, so a cursor is only ever used with the order it came from."""
        return ("-" if self.descending else "") + self.column.key


def _encode(values: list[Any]) -> str:
    raw = json.dumps(
        [v.isoformat() if isinstance(v, datetime) else v for v in values], separators=(",", ":")
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str, key: SortKey) -> tuple[Any, int]:
    invalid = Invalid(
        "The cursor is not valid: pass back `next_cursor` from the previous page unchanged.",
        field="cursor",
    )
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        sort, value, row_id = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise invalid from exc
    if sort != key.name:
        raise Invalid(
            f"The cursor belongs to the order `{sort}`, not `{key.name}`: keep the same `sort` "
            "while paging, or start again without a cursor.",
            field="cursor",
        )
    expected = key.column.type.python_type
    try:
        if isinstance(key.column.type, DateTime):
            value = datetime.fromisoformat(value)
        elif issubclass(expected, Enum):
            value = expected(value)
    except (ValueError, TypeError) as exc:
        raise invalid from exc
    if not isinstance(row_id, int) or not isinstance(value, expected):
        raise invalid
    return value, row_id


def paginate(statement: Select[Any], key: SortKey, cursor: str | None, limit: int) -> Select[Any]:
    """Order the statement by the key, start after the cursor, fetch one row more than asked
    (that extra row tells whether a next page exists)."""
    if cursor:
        position = tuple_(key.column, key.id_column)
        value, row_id = _decode(cursor, key)
        after = tuple_(literal(value, key.column.type), literal(row_id, key.id_column.type))
        statement = statement.where(position < after if key.descending else position > after)
    if key.descending:
        statement = statement.order_by(key.column.desc(), key.id_column.desc())
    else:
        statement = statement.order_by(key.column.asc(), key.id_column.asc())
    return statement.limit(limit + 1)


def next_cursor(rows: list[Any], key: SortKey, limit: int) -> tuple[list[Any], str | None]:
    """Trim the look-ahead row and build the cursor that continues after the last row kept."""
    if len(rows) <= limit:
        return rows, None
    kept = rows[:limit]
    last = kept[-1]
    return kept, _encode([key.name, getattr(last, key.column.key), last.id])


class Page(BaseModel, Generic[ItemT]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[ItemT]
    next_cursor: str | None = Field(
        description="Cursor of the next page; null on the last page.", examples=[None]
    )
