"""Answers that carry the resource's version as its ETag, and for a creation its Location."""

from __future__ import annotations

from typing import Protocol, TypeVar

from fastapi import Request, Response
from pydantic import BaseModel

from app.api.deps import etag

ReadT = TypeVar("ReadT", bound=BaseModel)


class Versioned(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def version(self) -> int: ...


def read_with_etag(response: Response, schema: type[ReadT], row: Versioned) -> ReadT:
    """``row`` as the ``schema`` the route answers with; its version becomes the ETag."""
    response.headers["ETag"] = etag(row.version)
    return schema.model_validate(row)


def upserted_with_etag(
    response: Response, schema: type[ReadT], row: Versioned, *, created: bool, location: str
) -> ReadT:
    """For a ``PUT`` that creates or updates: 201 with the new resource's canonical URL
    (``location``) when it created, else 200."""
    if created:
        response.status_code = 201
        response.headers["Location"] = location
    return read_with_etag(response, schema, row)


def created_with_etag(
    request: Request, response: Response, schema: type[ReadT], row: Versioned
) -> ReadT:
    """For a 201 from ``POST <collection>``: also ``Location``, the new resource's URL (the
    collection's path and the id)."""
    response.headers["Location"] = f"{request.url.path.rstrip('/')}/{row.id}"
    return read_with_etag(response, schema, row)
