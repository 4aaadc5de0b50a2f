"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.errors import DomainError
from app.core.logging import get_logger

PROBLEM_JSON = "application/problem+json"
log = get_logger(__name__)


class FieldError(BaseModel):
    pointer: str = Field(description="JSON pointer to the faulty input, e.g. `/body/subject`.")
    detail: str
    type: str


class Problem(BaseModel):
    type: str = Field(examples=["https://ticketry.dev/problems/not_found"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    415: "Unsupported media type",
    422: "Invalid request",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal server error",
}


_HEADERS: dict[int, dict[str, Any]] = {
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer"},
        }
    },
}
"""Headers that come with a problem of a status, for the OpenAPI entries."""


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem responses a route can give."""
    return {
        code: {
            "model": Problem,
            "description": _TITLES.get(code, "Error"),
            "content": {PROBLEM_JSON: {}},
            **({"headers": _HEADERS[code]} if code in _HEADERS else {}),
        }
        for code in statuses
    }


def _problem(
    request: Request,
    status: int,
    code: str,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://ticketry.dev/problems/{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": getattr(request.state, "request_id", None),
    }
    if errors is not None:
        body["errors"] = [e.model_dump() for e in errors]
    if extra:
        body.update(jsonable_encoder(extra))
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _pointer(location: tuple[Any, ...]) -> str:
    return "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in location)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    errors = None
    field = getattr(exc, "field", None)
    if field:
        errors = [
            FieldError(pointer=_pointer(tuple(field.split("."))), detail=exc.detail, type=exc.code)
        ]
    return _problem(
        request,
        exc.status,
        exc.code,
        exc.detail,
        errors=errors,
        extra=exc.extra,
        headers=_headers(exc),
    )


def _headers(exc: DomainError) -> dict[str, str] | None:
    """The headers HTTP asks of the answer to an error: how to authenticate after a 401, and
    when to try again after a 429, taken from the ``retry_after`` seconds the error carries."""
    headers: dict[str, str] = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    retry_after = exc.extra.get("retry_after")
    if exc.status == 429 and isinstance(retry_after, int):
        headers["Retry-After"] = str(retry_after)
    return headers or None


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(pointer=_pointer(tuple(e["loc"])), detail=e["msg"], type=e["type"])
        for e in exc.errors()
    ]
    summary = "; ".join(f"{e.pointer}: {e.detail}" for e in errors[:5])
    return _problem(
        request, 422, "validation_error", f"The request is not valid: {summary}", errors=errors
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _TITLES.get(exc.status_code, "error").lower().replace(" ", "_")
    headers = dict(exc.headers) if exc.headers else None
    return _problem(request, exc.status_code, code, str(exc.detail), headers=headers)


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("integrity_error", error=str(getattr(exc, "orig", exc)))
    return _problem(
        request,
        409,
        "conflict",
        "The change conflicts with existing data (a duplicate or a missing reference).",
    )


async def _stale_error(request: Request, exc: Exception) -> JSONResponse:
    return _problem(
        request,
        412,
        "precondition_failed",
        "The resource was changed by someone else at the same time: GET it again and retry.",
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path)
    return _problem(
        request,
        500,
        "internal_error",
        "Something went wrong on our side; the request id identifies it in the logs.",
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(StaleDataError, _stale_error)
    app.add_exception_handler(Exception, _unexpected_error)
