"""Fixtures of the gRPC frontend's plugin tests: a small in-process InferenceService and a served frontend.

The service (:class:`EchoService`) is deliberately tiny and deterministic, so that these tests check the
frontend's conversions and protocol behaviour without depending on model loading:

* ``echo``: OUTPUT<i> = INPUT<i> (any datatype and shape); the response echoes the request's custom
  parameters; a request parameter ``delay_ms`` sleeps before answering (to keep requests in flight);
* ``repeat``: decoupled: sends INPUT0 back ``repeat`` times (request parameter, default 2), then ends
  (an empty final response when ``triton_enable_empty_final_response`` is set);
* anything else: NOT_FOUND, as the kernel answers.

It is the kit's :class:`tritium.testing.service.ReferenceService` with these two models.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from tritium import InferenceService, TritiumError
from tritium.testing.service import ReferenceModel, ReferenceService

MODELS = ("echo", "repeat")


def unknown(name: str) -> TritiumError:
    return TritiumError.not_found(f"Request for unknown model: '{name}' is not found")


class EchoService(ReferenceService):
    """The kit's reference service with the models ``echo`` and ``repeat`` (see the module docstring)."""

    models = {"echo": ReferenceModel(), "repeat": ReferenceModel(decoupled=True)}
    extensions = ("classification", "sequence")
    platform = "echo"


@pytest.fixture
def echo_service() -> EchoService:
    return EchoService()


@pytest.fixture
def echo_service_class() -> type[EchoService]:
    """The EchoService class, to build one with other settings (test modules cannot import conftest)."""
    return EchoService


@pytest.fixture
async def make_frontend() -> AsyncIterator[Any]:
    """``await make_frontend(service, **options)`` -> a started GrpcFrontend on 127.0.0.1 and a free port
    (the OS picks it); every frontend made is stopped at teardown."""
    from tritium_frontend_grpc._frontend import create_frontend

    started: list[Any] = []

    async def make(service: InferenceService, **options: Any) -> Any:
        transport = os.environ.get("TRITIUM_TEST_GRPC_TRANSPORT", "native")
        frontend = create_frontend(service, {"address": "127.0.0.1", "port": 0, "transport": transport, **options})
        await frontend.start()
        started.append(frontend)
        return frontend

    try:
        yield make
    finally:
        for frontend in started:
            await frontend.stop()


@pytest.fixture
async def served(echo_service: EchoService, make_frontend: Any) -> tuple[EchoService, Any]:
    """The echo service behind a started gRPC frontend: ``(service, frontend)``."""
    return echo_service, await make_frontend(echo_service)


@pytest.fixture
def grpc_status_of():
    """``grpc_status_of(exc)`` -> (code, details) of a grpc or tritonclient error."""

    def status(exc: BaseException) -> tuple[grpc.StatusCode | None, str]:
        if isinstance(exc, grpc.RpcError):
            return exc.code(), exc.details() or ""
        return None, str(exc)

    return status
