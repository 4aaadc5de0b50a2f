"""Domain errors: raised by services, turned into RFC 9457 problem+json by the API layer."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"
    code: ClassVar[str] = "bad_request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class Unauthorized(DomainError):
    status = 401
    title = "Authentication required"
    code = "unauthorized"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    title = "Not found"
    code = "not_found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"
    code = "conflict"


class PreconditionFailed(DomainError):
    status = 412
    title = "Precondition failed"
    code = "precondition_failed"


class Invalid(DomainError):
    """A request that is well-formed but breaks a domain rule; ``field`` points at the culprit."""

    status = 422
    title = "Invalid request"
    code = "invalid"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.field = field


def check_version(current: int, expected: int | None) -> None:
    """Refuse an update made against an older version than the stored one (If-Match)."""
    if expected is not None and expected != current:
        raise PreconditionFailed(
            f"The resource changed since you read it (your version {expected}, now {current}): "
            "GET it again, reapply your change and send it with the new ETag.",
            current_version=current,
        )
