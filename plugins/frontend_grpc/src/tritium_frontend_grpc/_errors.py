"""How kernel errors become gRPC statuses, exactly as Triton maps them (``GrpcStatusUtil::Create``)."""

from __future__ import annotations

import grpc

from tritium import StatusCode, TritiumError

GRPC_STATUS: dict[StatusCode, grpc.StatusCode] = {
    StatusCode.UNKNOWN: grpc.StatusCode.UNKNOWN,
    StatusCode.INTERNAL: grpc.StatusCode.INTERNAL,
    StatusCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    StatusCode.INVALID_ARG: grpc.StatusCode.INVALID_ARGUMENT,
    StatusCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    StatusCode.UNSUPPORTED: grpc.StatusCode.UNIMPLEMENTED,
    StatusCode.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    StatusCode.CANCELLED: grpc.StatusCode.CANCELLED,
}
"""Kernel status code -> gRPC status code (UNSUPPORTED is UNIMPLEMENTED, INVALID_ARG INVALID_ARGUMENT)."""


def grpc_status(error: TritiumError) -> grpc.StatusCode:
    """The gRPC status code of a kernel error (UNKNOWN for codes Triton does not map)."""
    return GRPC_STATUS.get(error.code, grpc.StatusCode.UNKNOWN)


def as_tritium_error(exc: BaseException) -> TritiumError:
    """A kernel error for any exception raised while serving a request: TritiumErrors pass through, the
    rest become INTERNAL with their text (a bug, but the client still gets an answer)."""
    if isinstance(exc, TritiumError):
        return exc
    return TritiumError.internal(f"{type(exc).__name__}: {exc}")
