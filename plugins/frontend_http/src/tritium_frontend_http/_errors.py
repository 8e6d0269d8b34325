"""Errors as the HTTP frontend answers them: Triton's status mapping and ``{"error": "..."}`` bodies."""

from __future__ import annotations

import orjson

from tritium import StatusCode, TritiumError, protocol

_HTTP_STATUS: dict[StatusCode, int] = {
    StatusCode.INTERNAL: 500,
    StatusCode.NOT_FOUND: 404,
    StatusCode.UNAVAILABLE: 503,
    StatusCode.UNSUPPORTED: 501,
    StatusCode.UNKNOWN: 400,
    StatusCode.INVALID_ARG: 400,
    StatusCode.ALREADY_EXISTS: 400,
    StatusCode.CANCELLED: 400,
}
"""Triton's ``HttpCodeFromError``."""


def http_status(code: StatusCode) -> int:
    """The HTTP status Triton answers for a kernel status code (400 for anything unmapped)."""
    return _HTTP_STATUS.get(code, 400)


def error_body(message: str) -> bytes:
    """``{"error": message}`` as Triton writes it. A message quoting undecodable client bytes (header values
    arrive surrogate-escaped) shows them as ``\\udcXX`` escapes: JSON holds only valid UTF-8."""
    try:
        return orjson.dumps({"error": message})
    except TypeError:
        return orjson.dumps({"error": message.encode("utf-8", "backslashreplace").decode("utf-8")})


class HttpError(Exception):
    """An error answered with an explicit HTTP status (404/405/403 and friends)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def malformed(message: str) -> TritiumError:
    """A request Tritium cannot read (bad JSON, wrong JSON types, data not matching its shape, ...):
    INVALID_ARG, so HTTP 400 with Triton's message text.

    Triton answers these with 500 (its JSON reader's errors are INTERNAL); Tritium answers 400 on purpose,
    because the request is at fault and load balancers and alerting count 5xx as server failures
    (docs/http.md, "Differences from Triton")."""
    return TritiumError(StatusCode.INVALID_ARG, message)


def invalid(message: str) -> TritiumError:
    """An INVALID_ARG error (HTTP 400)."""
    return TritiumError(StatusCode.INVALID_ARG, message)


def with_prefix(prefix: str, error: TritiumError) -> TritiumError:
    """Triton's ``RETURN_MSG_IF_ERR``: the same code, message ``"<prefix>: <message>"``."""
    return TritiumError(error.code, f"{prefix}: {error.message}", reason=error.reason)


request_prefix = protocol.request_prefix
