"""The service's errors, shared by every transport.

A ``ServiceError`` carries the reference's JSON error shape (``code``, ``message``)
and the HTTP status the networked service answers with; the in-process transport
raises the same classes, so a caller catches one hierarchy on either transport.
This module imports nothing heavy: the client imports it without the service.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "InvalidRequest",
    "PayloadTooLarge",
    "ServiceError",
    "ServiceUnavailable",
    "UnknownContainer",
    "UnknownEndpoint",
    "UnknownFunction",
    "UnknownTask",
    "UnknownTaskGroup",
    "error_from_dict",
]


class ServiceError(Exception):
    """A request the service refused; nothing was stored."""

    code: ClassVar[str] = "SERVICE_ERROR"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        """The reference's error body: ``{"code": ..., "message": ...}``."""
        return {"code": self.code, "message": self.message}


class InvalidRequest(ServiceError, ValueError):
    """A malformed request: a wrong type, a missing field, a bad id."""

    code = "BAD_REQUEST"
    http_status = 400


class _NotFound(ServiceError, LookupError):
    http_status = 404


class UnknownFunction(_NotFound):
    code = "FUNCTION_NOT_FOUND"


class UnknownEndpoint(_NotFound):
    code = "ENDPOINT_NOT_FOUND"


class UnknownTask(_NotFound):
    code = "TASK_NOT_FOUND"


class UnknownTaskGroup(_NotFound):
    code = "TASK_GROUP_NOT_FOUND"


class UnknownContainer(_NotFound):
    code = "CONTAINER_NOT_FOUND"


class PayloadTooLarge(ServiceError, ValueError):
    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class ServiceUnavailable(ServiceError):
    code = "SERVICE_UNAVAILABLE"
    http_status = 503


_BY_CODE: dict[str, type[ServiceError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        UnknownFunction,
        UnknownEndpoint,
        UnknownTask,
        UnknownTaskGroup,
        UnknownContainer,
        PayloadTooLarge,
        ServiceUnavailable,
    )
}


def error_from_dict(body: dict[str, Any]) -> ServiceError:
    """The exception for an error body (``ServiceError`` for an unknown code)."""
    cls = _BY_CODE.get(str(body.get("code")), ServiceError)
    return cls(str(body.get("message", "")))
