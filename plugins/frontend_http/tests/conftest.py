"""In-process fixtures for the HTTP frontend's own tests: a small fake InferenceService and a running
frontend on a free loopback port (the end-to-end tests in the repository's tests/ use a real server)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from tritium_frontend_http._frontend import HttpFrontend
from tritium_frontend_http._settings import HttpSettings

from tritium import (
    DataType,
    InferenceRequest,
    InferenceResponse,
    Tensor,
    TritiumError,
)
from tritium.testing.service import ReferenceModel, ReferenceService


class FakeService(ReferenceService):
    """The kit's reference service with the models ``simple`` (INT32[16] x2 -> sum, difference; batch 8),
    ``echo`` (returns every input as ``OUT_<name>``, any datatype), ``bytes1`` (one BYTES [1] input, batch 8),
    ``repeat`` (decoupled: sends INPUT0 ``times`` times, a request parameter). Settings, shared memory,
    health and repository control are the reference's."""

    models = {name: ReferenceModel(decoupled=name == "repeat") for name in ("simple", "echo", "bytes1", "repeat")}
    extensions = ("binary_tensor_data",)
    platform = "fake"

    def __init__(self, allow_shm: bool = False) -> None:
        super().__init__(allow_shm=allow_shm)
        self.last_request: InferenceRequest | None = None
        self.loaded: list[tuple[str, Any, Any]] = []  # type: ignore[assignment]
        self.infer_delay: Any = None  # an async callable awaited before answering an inference

    def _check(self, name: str) -> None:
        self.check_model(name)

    def model_metadata(self, name: str, version: str = "") -> dict[str, Any]:
        self._check(name)
        if name == "repeat":
            return {
                "name": name,
                "versions": ["1"],
                "platform": "fake",
                "inputs": [{"name": "INPUT0", "datatype": "BYTES", "shape": [-1]}],
                "outputs": [{"name": "OUTPUT0", "datatype": "BYTES", "shape": [-1]}],
            }
        return {
            "name": name,
            "versions": ["1"],
            "platform": "fake",
            "inputs": [
                {"name": "INPUT0", "datatype": "INT32", "shape": [-1, 16]},
                {"name": "INPUT1", "datatype": "INT32", "shape": [-1, 16]},
            ],
            "outputs": [],
        }

    def model_config(self, name: str, version: str = "") -> Any:
        self._check(name)
        if name == "bytes1":
            inputs = [SimpleNamespace(name="INPUT0", data_type=13, dims=[1])]
        elif name == "echo":
            inputs = [SimpleNamespace(name="INPUT0", data_type=11, dims=[-1])]
        else:
            inputs = [SimpleNamespace(name=f"INPUT{i}", data_type=8, dims=[16]) for i in range(2)]
        return SimpleNamespace(input=inputs, max_batch_size=8)

    def is_decoupled(self, name: str, version: str = "") -> bool:
        self._check(name)
        return name == "repeat"

    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        if self.infer_delay is not None:
            await self.infer_delay()
        return self._answer(request)

    def infer_nowait(self, request: InferenceRequest) -> Any:
        """Synchronous unless ``infer_delay`` is set (then the frontend has to await the answer)."""
        if self.infer_delay is not None:
            return self.infer(request)
        return self._answer(request)

    def _answer(self, request: InferenceRequest) -> InferenceResponse:
        self.last_request = request
        self._check(request.model_name)
        inputs = request.inputs
        if request.model_name == "simple":
            missing = [n for n in ("INPUT0", "INPUT1") if n not in inputs]
            if missing:
                raise TritiumError.invalid_arg(f"missing input(s) {missing}")
            a, b = inputs["INPUT0"].data, inputs["INPUT1"].data
            outputs = {"OUTPUT0": a + b, "OUTPUT1": a - b}
            tensors = [Tensor.from_numpy(k, v.astype(np.int32)) for k, v in outputs.items()]
        else:
            tensors = [Tensor("OUT_" + t.name, t.datatype, t.data) for t in inputs.values()]
        wanted = [o.name for o in request.requested_outputs]
        if wanted:
            tensors = [t for t in tensors if t.name in wanted]
            for output in request.requested_outputs:
                if output.classification:
                    for i, t in enumerate(tensors):
                        if t.name == output.name:
                            top = np.argsort(-t.data.reshape(-1))[: output.classification]
                            labels = np.array(
                                [f"{float(t.data.reshape(-1)[j]):f}:{j}".encode() for j in top], dtype=object
                            )
                            tensors[i] = Tensor(t.name, DataType.BYTES, labels)
        return InferenceResponse(model_name=request.model_name, model_version="1", id=request.id, outputs=tensors)

    async def infer_stream(self, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:  # type: ignore[override]
        self._check(request.model_name)
        if request.model_name != "repeat":
            yield await self.infer(request)
            return
        times = int(request.parameters.get("times", 1))
        data = request.inputs["INPUT0"].data
        for i in range(times):
            if request.parameters.get("fail_at") == i:
                raise TritiumError.internal("An Error Occurred")
            await asyncio.sleep(0)
            yield InferenceResponse(
                model_name="repeat",
                model_version="1",
                id=request.id,
                outputs=[Tensor("OUTPUT0", DataType.BYTES, data)],
                final=i == times - 1,
            )

    def statistics(self, name: str = "", version: str = "") -> dict[str, Any]:
        if name:
            self._check(name)
        return {"model_stats": [{"name": name or "simple", "version": version or "1"}]}

    def repository_index(self, repository: str = "", ready_only: bool = False) -> list[dict[str, Any]]:
        return [{"name": "simple", "version": "1", "state": "READY", "reason": ""}]

    async def load_model(
        self, name: str, *, config: str | None = None, files: Mapping[str, bytes] | None = None
    ) -> None:
        self.loaded.append((name, config, files))

    async def unload_model(self, name: str, *, unload_dependents: bool = False) -> None:
        self.loaded.append((name, "unload", unload_dependents))


class RunningFrontend:
    """An HttpFrontend on its own event loop thread, for synchronous clients (requests, tritonclient)."""

    def __init__(self, service: FakeService, **options: Any) -> None:
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
def fake_service() -> FakeService:
    return FakeService(allow_shm=True)


@pytest.fixture
def http_frontend(fake_service: FakeService) -> Iterator[RunningFrontend]:
    with RunningFrontend(fake_service) as running:
        yield running


@pytest.fixture
def make_service() -> Any:
    """``make_service(allow_shm=False)`` -> a new :class:`FakeService`."""
    return FakeService


@pytest.fixture
def run_frontend() -> Any:
    """``with run_frontend(service, **options) as running:`` -> a :class:`RunningFrontend`."""
    return RunningFrontend
