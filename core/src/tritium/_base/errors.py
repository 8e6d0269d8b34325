"""Protocol-neutral errors.

Every error the kernel raises carries a :class:`StatusCode`; each frontend maps the code to its protocol
exactly as Triton does (HTTP status, gRPC status). ``reason`` is the metrics failure reason
(``REJECTED``, ``CANCELED``, ``BACKEND``, ``OTHER``) Triton attaches to ``nv_inference_request_failure``.
"""

from __future__ import annotations

import enum


class StatusCode(enum.Enum):
    """Triton's TRITONSERVER_Error codes, independent of any wire protocol."""

    UNKNOWN = "UNKNOWN"
    INTERNAL = "INTERNAL"
    NOT_FOUND = "NOT_FOUND"
    INVALID_ARG = "INVALID_ARG"
    UNAVAILABLE = "UNAVAILABLE"
    UNSUPPORTED = "UNSUPPORTED"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    CANCELLED = "CANCELLED"


class FailureReason(enum.Enum):
    """Why a request failed, as the ``reason`` label of Triton's failure counter."""

    REJECTED = "REJECTED"
    CANCELED = "CANCELED"
    BACKEND = "BACKEND"
    OTHER = "OTHER"


class TritiumError(Exception):
    """An error with a protocol-neutral status code and a message shown to clients verbatim."""

    def __init__(
        self,
        code: StatusCode,
        message: str,
        *,
        reason: FailureReason = FailureReason.OTHER,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason

    def __repr__(self) -> str:
        return f"TritiumError({self.code.name}, {self.message!r})"

    def __str__(self) -> str:
        return self.message

    @classmethod
    def invalid_arg(cls, message: str) -> TritiumError:
        return cls(StatusCode.INVALID_ARG, message)

    @classmethod
    def not_found(cls, message: str) -> TritiumError:
        return cls(StatusCode.NOT_FOUND, message)

    @classmethod
    def unavailable(cls, message: str, *, reason: FailureReason = FailureReason.OTHER) -> TritiumError:
        return cls(StatusCode.UNAVAILABLE, message, reason=reason)

    @classmethod
    def internal(cls, message: str, *, reason: FailureReason = FailureReason.OTHER) -> TritiumError:
        return cls(StatusCode.INTERNAL, message, reason=reason)

    @classmethod
    def unsupported(cls, message: str) -> TritiumError:
        return cls(StatusCode.UNSUPPORTED, message)

    @classmethod
    def already_exists(cls, message: str) -> TritiumError:
        return cls(StatusCode.ALREADY_EXISTS, message)

    @classmethod
    def cancelled(cls, message: str = "request cancelled") -> TritiumError:
        return cls(StatusCode.CANCELLED, message, reason=FailureReason.CANCELED)


class PluginError(Exception):
    """A plugin could not be loaded or registered; the message names plugin, distribution and version."""


class ConfigError(Exception):
    """A model configuration or server configuration is invalid; the message names the file and field."""
