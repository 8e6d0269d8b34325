"""In-process fixtures for the HTTP frontend's own tests: the kit's reference service
(:class:`tritium.testing.service.ReferenceService`, the same fake the gRPC frontend's tests use) with the models
below, and a running frontend on a free loopback port (the end-to-end tests in the repository's tests/ use a
real server)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from tritium_frontend_http._frontend import HttpFrontend
from tritium_frontend_http._settings import HttpSettings

from tritium.testing.service import ReferenceModel, ReferenceService

#: The models of these tests (every one OUTPUT<i> = INPUT<i>, validated as the kernel validates):
#: ``simple`` (Triton's simple model's tensors: INT32 [16] x2, batch 8), ``echo`` (FP32 [-1], batch 8: raw
#: binary requests), ``bytes1`` (BYTES [1], batch 8), ``repeat`` (decoupled, BYTES [-1]: sends INPUT0 back
#: ``repeat`` times, a request parameter; ``fail_at`` fails it before that response).
MODELS = {
    "simple": ReferenceModel(
        inputs=(("INPUT0", "INT32", (-1, 16)), ("INPUT1", "INT32", (-1, 16))),
        outputs=(("OUTPUT0", "INT32", (-1, 16)), ("OUTPUT1", "INT32", (-1, 16))),
    ),
    "echo": ReferenceModel(inputs=(("INPUT0", "FP32", (-1, -1)),), outputs=(("OUTPUT0", "FP32", (-1, -1)),)),
    "bytes1": ReferenceModel(inputs=(("INPUT0", "BYTES", (-1, 1)),), outputs=(("OUTPUT0", "BYTES", (-1, 1)),)),
    "repeat": ReferenceModel(
        inputs=(("INPUT0", "BYTES", (-1,)),), outputs=(("OUTPUT0", "BYTES", (-1,)),), decoupled=True, max_batch_size=0
    ),
}
EXTENSIONS = ("binary_tensor_data",)


def make_reference_service(allow_shm: bool = False) -> ReferenceService:
    return ReferenceService(models=MODELS, extensions=EXTENSIONS, platform="fake", validate=True, allow_shm=allow_shm)


class RunningFrontend:
    """An HttpFrontend on its own event loop thread, for synchronous clients (requests, tritonclient)."""

    def __init__(self, service: ReferenceService, **options: Any) -> None:
        self.service = service
        options.setdefault("port", 0)
        options.setdefault("address", "127.0.0.1")
        self.frontend = HttpFrontend(service, HttpSettings.from_options(options))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> RunningFrontend:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.frontend.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.frontend.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.frontend.port}"

    @property
    def base(self) -> str:
        return f"http://{self.url}"


@pytest.fixture
def fake_service() -> ReferenceService:
    return make_reference_service(allow_shm=True)


@pytest.fixture
def http_frontend(fake_service: ReferenceService) -> Iterator[RunningFrontend]:
    with RunningFrontend(fake_service) as running:
        yield running


@pytest.fixture
def make_service() -> Any:
    """``make_service(allow_shm=False)`` -> a new reference service with this suite's models."""
    return make_reference_service


@pytest.fixture
def run_frontend() -> Any:
    """``with run_frontend(service, **options) as running:`` -> a :class:`RunningFrontend`."""
    return RunningFrontend
