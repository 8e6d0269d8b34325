"""Fixtures of the gRPC frontend's plugin tests: a small in-process InferenceService and a served frontend.

The service (:class:`EchoService`) is deliberately tiny and deterministic, so that these tests check the
frontend's conversions and protocol behaviour without depending on model loading:

* ``echo``: OUTPUT<i> = INPUT<i> (any datatype and shape); the response echoes the request's custom
  parameters; a request parameter ``delay_ms`` sleeps before answering (to keep requests in flight);
* ``repeat``: decoupled: sends INPUT0 back ``repeat`` times (request parameter, default 2), then ends
  (an empty final response when ``triton_enable_empty_final_response`` is set);
* anything else: NOT_FOUND, as the kernel answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
import pytest

from tritium import (
    InferenceRequest,
    InferenceResponse,
    InferenceService,
    SharedMemoryRegistry,
    Tensor,
    TritiumError,
)
from tritium.proto import model_config_pb2

MODELS = ("echo", "repeat")


def unknown(name: str) -> TritiumError:
    return TritiumError.not_found(f"Request for unknown model: '{name}' is not found")


class EchoService(InferenceService):
    """A deterministic InferenceService for frontend tests (see the module docstring)."""

    def __init__(self, *, allow_shm: bool = True) -> None:
        self.requests: list[InferenceRequest] = []
        self.log = {
            "log_file": "",
            "log_info": True,
            "log_warning": True,
            "log_error": True,
            "log_verbose_level": 0,
            "log_format": "default",
        }
        self.trace: dict[str, Any] = {"trace_level": ["OFF"], "trace_rate": "1000", "trace_count": "-1"}
        self.loaded: list[tuple[str, str | None, dict[str, bytes] | None]] = []
        self.unloaded: list[tuple[str, bool]] = []
        self._shm = SharedMemoryRegistry(allowed=allow_shm)
        self.is_stopping = False

    def server_live(self) -> bool:
        return True

    def server_ready(self) -> bool:
        return True

    @property
    def stopping(self) -> bool:
        return self.is_stopping

    def model_ready(self, name: str, version: str = "") -> bool:
        return name in MODELS and version in ("", "1")

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "triton", "version": "2.73.0", "extensions": ["classification", "sequence"]}

    def _check(self, name: str, version: str = "") -> None:
        if name not in MODELS:
            raise unknown(name)
        if version not in ("", "1"):
            raise TritiumError.unavailable(f"Request for unknown model: '{name}' version {version} is not found")

    def model_metadata(self, name: str, version: str = "") -> dict[str, Any]:
        self._check(name, version)
        tensor = {"name": "INPUT0", "datatype": "FP32", "shape": [-1, 16]}
        return {
            "name": name,
            "versions": ["1"],
            "platform": "echo",
            "inputs": [tensor],
            "outputs": [{**tensor, "name": "OUTPUT0"}],
        }

    def model_config(self, name: str, version: str = "") -> Any:
        self._check(name, version)
        config = model_config_pb2.ModelConfig(name=name, backend="echo", max_batch_size=8)
        config.input.add(name="INPUT0", data_type=model_config_pb2.TYPE_FP32, dims=[16])
        config.model_transaction_policy.decoupled = name == "repeat"
        return config

    def is_decoupled(self, name: str, version: str = "") -> bool:
        self._check(name, version)
        return name == "repeat"

    def _respond(self, request: InferenceRequest, **params: Any) -> InferenceResponse:
        wanted = {o.name for o in request.requested_outputs}
        outputs = [
            Tensor("OUTPUT" + t.name[5:], t.datatype, t.data)
            for t in request.inputs.values()
            if not wanted or "OUTPUT" + t.name[5:] in wanted
        ]
        return InferenceResponse(
            model_name=request.model_name,
            model_version="1",
            id=request.id,
            outputs=outputs,
            parameters={**request.parameters, **params},
        )

    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        self._check(request.model_name)
        self.requests.append(request)
        if request.model_name == "repeat":
            raise TritiumError.unsupported("model 'repeat' uses the decoupled transaction policy")
        delay = request.parameters.get("delay_ms", 0)
        if delay:
            await asyncio.sleep(int(delay) / 1000)
        if request.parameters.get("fail"):
            raise TritiumError.internal(f"echo failed for '{request.id}'")
        return self._respond(request)

    async def infer_stream(self, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:
        if request.model_name != "repeat":
            yield await self.infer(request)
            return
        self.requests.append(request)
        repeat = int(request.parameters.get("repeat", 2))
        empty_final = bool(request.parameters.pop("triton_enable_empty_final_response", False))
        for i in range(repeat):
            await asyncio.sleep(0)
            response = self._respond(request, index=i)
            response.final = i == repeat - 1 and not empty_final
            yield response
        if empty_final:
            yield InferenceResponse(model_name="repeat", model_version="1", id=request.id, final=True)

    def statistics(self, name: str = "", version: str = "") -> dict[str, Any]:
        if name:
            self._check(name, version)
        duration = {"count": 2, "ns": 2000}
        return {
            "model_stats": [
                {
                    "name": n,
                    "version": "1",
                    "last_inference": 1700000000000,
                    "inference_count": 4,
                    "execution_count": 2,
                    "inference_stats": {"success": duration, "queue": duration},
                    "batch_stats": [{"batch_size": 2, "compute_infer": duration}],
                    "memory_usage": [],
                    "response_stats": {},
                }
                for n in ([name] if name else MODELS)
            ]
        }

    def repository_index(self, repository: str = "", ready_only: bool = False) -> list[dict[str, Any]]:
        return [{"name": n, "version": "1", "state": "READY", "reason": ""} for n in MODELS]

    async def load_model(
        self, name: str, *, config: str | None = None, files: Mapping[str, bytes] | None = None
    ) -> None:
        if name == "broken":
            raise TritiumError.invalid_arg("failed to load 'broken': no model file")
        self.loaded.append((name, config, dict(files) if files else None))

    async def unload_model(self, name: str, *, unload_dependents: bool = False) -> None:
        self.unloaded.append((name, unload_dependents))

    def log_settings(self) -> dict[str, Any]:
        return dict(self.log)

    def update_log_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        for key, value in settings.items():
            if key not in self.log or key == "log_file":
                raise TritiumError.invalid_arg(f"log setting '{key}' can not be updated")
            self.log[key] = value
        return dict(self.log)

    def trace_settings(self, model: str = "") -> dict[str, Any]:
        if model:
            self._check(model)
        return dict(self.trace)

    def update_trace_settings(self, settings: Mapping[str, Any], model: str = "") -> dict[str, Any]:
        if model:
            self._check(model)
        for key, value in settings.items():
            if value is None:
                self.trace.pop(key, None)
            else:
                self.trace[key] = value
        return dict(self.trace)

    @property
    def shared_memory(self) -> SharedMemoryRegistry:
        return self._shm


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
        frontend = create_frontend(service, {"address": "127.0.0.1", "port": 0, **options})
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
