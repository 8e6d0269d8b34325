"""The data plane: the kernel's implementation of :class:`tritium.InferenceService`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping
from functools import partial
from time import monotonic_ns as _monotonic_ns
from typing import TYPE_CHECKING, Any

from tritium._base.completion import Completion
from tritium._base.errors import TritiumError
from tritium._base.options import ServerOptions
from tritium._base.tensors import InferenceRequest, InferenceResponse
from tritium._runtime.call_chain import CALL_CHAIN, DEFAULT_MAX_CALL_DEPTH
from tritium._runtime.lifecycle import READY, ModelManager
from tritium._runtime.model_client import ScopedModelClient
from tritium._runtime.service import InferenceService, ServiceCapability
from tritium._runtime.settings import LogSettings, TraceSettings
from tritium._runtime.shm import SharedMemoryRegistry
from tritium.protocol import parse_model_version, request_prefix

if TYPE_CHECKING:
    from tritium._plugins.host import PluginHost
    from tritium.config import ModelConfig

_log = logging.getLogger("tritium.dataplane")

# Triton's extension names, in the order its server metadata lists them, less those Tritium does not do:
# "model_repository(unload_dependents)" (no model depends on another yet: nothing to unload with it) and
# "trace" (the trace settings are kept and answered, but no request is traced).
_EXTENSION_ORDER = (
    "classification",
    "sequence",
    "model_repository",
    "schedule_policy",
    "model_configuration",
    "system_shared_memory",
    "cuda_shared_memory",
    "binary_tensor_data",
    "parameters",
    "statistics",
    "logging",
)
_EMPTY_FINAL_KEY = "triton_enable_empty_final_response"


class DataPlane(InferenceService):
    """Routes every call to the model manager and the models' schedulers."""

    def __init__(
        self,
        options: ServerOptions,
        host: PluginHost,
        models: ModelManager,
        version: str,
        log_settings: LogSettings,
    ) -> None:
        self.options = options
        self.host = host
        self.models = models
        self.version = version
        self._live = False
        self._stopping = False
        self._log_settings = log_settings
        self._trace = TraceSettings()
        self._shm = SharedMemoryRegistry(allowed=options.allow_client_shm)
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.max_call_depth = DEFAULT_MAX_CALL_DEPTH
        models.client_for = self.model_client

    def model_client(self, caller: str) -> ScopedModelClient:
        """A :class:`tritium.abc.ModelClient` scoped to model ``caller`` (for its scheduler and instances);
        created on the event loop that serves the requests."""
        return ScopedModelClient(self, caller, asyncio.get_running_loop())

    @property
    def capabilities(self) -> frozenset[ServiceCapability]:
        """Every optional part: the data plane implements the whole service."""
        return frozenset(ServiceCapability)

    # ------------------------------------------------------------------------------------ lifecycle
    def mark_live(self) -> None:
        self._live = True

    def begin_shutdown(self) -> None:
        self._stopping = True

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False when ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # --------------------------------------------------------------------------------------- health
    def server_live(self) -> bool:
        return self._live and not self._stopping

    @property
    def stopping(self) -> bool:
        return self._stopping

    def server_ready(self) -> bool:
        if not self._live or self._stopping:
            return False
        return self.models.all_ready() if self.options.strict_readiness else True

    def model_ready(self, name: str, version: str = "") -> bool:
        try:
            self.models.runtime(name, version)
        except TritiumError:
            return False
        return not self._stopping

    # ------------------------------------------------------------------------------------- metadata
    def server_metadata(self) -> dict[str, Any]:
        available = set(_EXTENSION_ORDER)
        if "sequence_batching" not in self.host.schedulers:
            available.discard("sequence")
        if "dynamic_batching" not in self.host.schedulers:
            available.discard("schedule_policy")
        return {
            "name": self.options.server_id,
            "version": self.version,
            "extensions": [e for e in _EXTENSION_ORDER if e in available],
        }

    def model_metadata(self, name: str, version: str = "") -> dict[str, Any]:
        runtime = self.models.runtime(name, version)
        config = runtime.config
        record = self.models.record(name)
        versions = [str(v) for v in record.ready_versions()] if record else [str(runtime.version)]
        batch = [-1] if config.max_batch_size > 0 else []

        def tensors(items: Any) -> list[dict[str, Any]]:
            from tritium._base.datatypes import DataType

            return [
                {
                    "name": t.name,
                    "datatype": DataType.from_config_enum(t.data_type).value,
                    "shape": batch + [int(d) for d in t.dims],
                }
                for t in items
            ]

        return {
            "name": name,
            "versions": versions,
            "platform": config.platform or config.backend,
            "inputs": tensors(config.input),
            "outputs": tensors(config.output),
        }

    def model_config(self, name: str, version: str = "") -> ModelConfig:
        return self.models.runtime(name, version).config

    def is_decoupled(self, name: str, version: str = "") -> bool:
        return self.models.runtime(name, version).decoupled

    # ------------------------------------------------------------------------------------ inference
    def _admit(self, request: InferenceRequest) -> Any:
        if self._stopping and not request.call_chain:  # nested requests finish what is in flight
            raise TritiumError.unavailable(
                f"{request_prefix(request.id)}Server is stopping, not accepting new requests"
            )
        runtime = self.models.runtime(request.model_name, request.model_version)
        runtime.validator.validate(request)
        request.arrival_ns = _monotonic_ns()
        return runtime

    def _enter(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        result = self.infer_nowait(request)
        if isinstance(result, InferenceResponse):
            return result
        return await result

    def infer_nowait(self, request: InferenceRequest) -> InferenceResponse | Awaitable[InferenceResponse]:
        runtime = self._admit(request)
        if runtime.decoupled:
            raise TritiumError.unsupported(
                f"{request_prefix(request.id)}model '{request.model_name}' uses the decoupled transaction "
                "policy: use a streaming API"
            )
        infer_now = runtime.infer_now
        if infer_now is not None:
            # Synchronous from here to the answer: no request of this one is in flight when anyone can look.
            response: InferenceResponse | Completion[InferenceResponse] | None = infer_now(request)
            if response is not None:
                if not isinstance(response, Completion):
                    return response
                # Started at once: in flight until the scheduler settles it (the listener added first runs
                # first, so the request has left before whoever answers the client hears of its end).
                runtime.enter()
                self._enter()
                response.when_settled(partial(self._started_ended, runtime))
                return response
        return self._infer_admitted(runtime, request)

    def _started_ended(self, runtime: Any, _completion: Any) -> None:
        runtime.leave()
        self._leave()

    async def _infer_admitted(self, runtime: Any, request: InferenceRequest) -> InferenceResponse:
        runtime.enter()
        self._in_flight += 1
        if self._in_flight == 1:
            self._idle.clear()
        chain = request.call_chain
        token = CALL_CHAIN.set((*chain, runtime.name)) if chain else None
        try:
            response: InferenceResponse = await runtime.scheduler.infer(request)
            return response
        finally:
            if token is not None:
                CALL_CHAIN.reset(token)
            runtime.leave()
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def infer_stream(self, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:
        runtime = self._admit(request)
        runtime.enter()
        self._enter()
        try:
            # Every streaming request goes through the model's scheduler (decoupled models included). The call
            # chain of a nested request travels on the request itself: a context variable set here would leak
            # into the consumer between responses.
            want_empty_final = runtime.decoupled and bool(request.parameters.pop(_EMPTY_FINAL_KEY, False))
            stream = runtime.scheduler.infer_stream(request)
            try:
                async for response in stream:
                    if runtime.decoupled and response.final and not response.outputs and not want_empty_final:
                        return
                    yield response
            finally:
                if isinstance(stream, AsyncGenerator):
                    await stream.aclose()  # the scheduler's stream ends now (its instance goes back at once)
        finally:
            runtime.leave()
            self._leave()

    # ----------------------------------------------------------------------------------- statistics
    def statistics(self, name: str = "", version: str = "") -> dict[str, Any]:
        entries: list[dict[str, Any]] = []
        if name:
            record = self.models.record(name)
            if record is None or not record.serving:  # Triton's words and code (INVALID_ARG, 400)
                raise TritiumError.invalid_arg(f"requested model '{name}' is not available")
            if version:
                loaded = record.serving.get(parse_model_version(version))  # Triton's error when malformed
                if loaded is None:
                    raise TritiumError.invalid_arg(f"requested model version is not available for model '{name}'")
                entries.append(loaded.pool.statistics.as_dict())
            else:
                entries.extend(record.serving[v].pool.statistics.as_dict() for v in sorted(record.serving))
        else:
            for record in self.models.records():
                entries.extend(record.serving[v].pool.statistics.as_dict() for v in sorted(record.serving))
        return {"model_stats": entries}

    # ---------------------------------------------------------------------------- repository control
    def repository_index(self, repository: str = "", ready_only: bool = False) -> list[dict[str, Any]]:
        try:
            found = self.models.scan()
        except Exception:  # a vanished repository must not break the index
            found = {}
        if repository:
            found = {
                n: d for n, d in found.items() if d.repository.name == repository or str(d.repository) == repository
            }
        names = sorted(set(found) | {r.name for r in self.models.records() if not repository})
        index: list[dict[str, Any]] = []
        for name in names:
            record = self.models.record(name)
            if record is None or (not record.states and not record.error):
                if not ready_only:
                    index.append({"name": name})
                continue
            if not record.states:
                if not ready_only:
                    index.append({"name": name, "state": "UNAVAILABLE", "reason": record.error})
                continue
            for version in sorted(record.states):
                state = record.states[version]
                if ready_only and state.state != READY:
                    continue
                entry = {"name": name, "version": str(version), "state": state.state}
                if state.reason:  # Triton leaves an empty reason out
                    entry["reason"] = state.reason
                index.append(entry)
        return index

    def _check_explicit(self) -> None:
        if self.options.model_control_mode != "explicit":
            raise TritiumError.unavailable("explicit model load / unload is not allowed if polling is enabled")

    async def load_model(
        self, name: str, *, config: str | None = None, files: Mapping[str, bytes] | None = None
    ) -> None:
        self._check_explicit()
        override = None
        if files and config is None:
            raise TritiumError.invalid_arg(
                f"failed to load '{name}': the 'config' parameter is required when 'file:' parameters "
                "are given"
            )
        if config is not None:
            from tritium.config import model_config_from_json

            try:
                override = model_config_from_json(config, source=f"load request for '{name}'")
            except Exception as exc:
                raise TritiumError.invalid_arg(f"failed to load '{name}': {exc}") from None
        await self.models.load(name, config_override=override, files=files)

    async def unload_model(self, name: str, *, unload_dependents: bool = False) -> None:
        self._check_explicit()
        await self.models.unload(name)

    # ------------------------------------------------------------------------------- logging / trace
    def log_settings(self) -> dict[str, Any]:
        return self._log_settings.as_dict()

    def update_log_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        self._log_settings.update(settings)
        return self._log_settings.as_dict()

    def trace_settings(self, model: str = "") -> dict[str, Any]:
        if model:
            self.models.runtime(model)
        return self._trace.get(model)

    def update_trace_settings(self, settings: Mapping[str, Any], model: str = "") -> dict[str, Any]:
        if model:
            self.models.runtime(model)
        return self._trace.update(settings, model)

    # -------------------------------------------------------------------------------- shared memory
    @property
    def shared_memory(self) -> SharedMemoryRegistry:
        return self._shm

