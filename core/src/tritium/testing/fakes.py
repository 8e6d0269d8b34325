"""Fake components and tiny model repositories for testing plugins against a real kernel.

* :class:`IdentityBackend` (backend ``identity``, model file ``model.identity``): output *i* is a copy of
  input *i* (by position in the config), cast to the output's datatype. Config parameters tune it:
  ``execute_delay_ms`` sleeps in every execution (to keep requests in flight), ``decoupled_repeat`` is how
  many responses a decoupled identity model sends before its final flag (default 1), ``awaited_execution``
  (``true``) makes its instances await their executions on the event loop (``execute_async`` returning a
  :class:`tritium.Completion` settled after the delay, up to 4 in progress per instance), as a backend whose
  work happens in another process does.
* :class:`RecordingInstance` wraps an instance, records every batch it executes and can hold executions at
  a gate (for scheduler tests); :class:`RecordingSink` records every metrics event.
* :class:`LoopbackFrontend` serves the data plane to in-process callers (no network): the reference that
  :class:`tritium.testing.FrontendConformance` is checked against.
* This module is itself a plugin registering the identity backend::

      server = tritium.Server(options, plugins=[("fakes", tritium.testing.fakes)])

  (or ``fake_plugin``, the same hooks as an object).
* :func:`write_identity_model` and :func:`write_model` lay out a model repository in a directory.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import text_format

from tritium._base.completion import Completion
from tritium._base.datatypes import DataType
from tritium._base.errors import TritiumError
from tritium._base.events import Event
from tritium._base.specs import BackendSpec
from tritium._base.tensors import InferenceRequest, InferenceResponse, RequestedOutput, Tensor
from tritium._runtime.service import InferenceService
from tritium.abc import (
    Backend,
    Batch,
    Frontend,
    InstancePlacement,
    MetricsSink,
    ModelInstance,
    ModelSource,
    ResponseSender,
)
from tritium.hookspecs import hookimpl
from tritium.testing._modelconfig import ModelConfig, config_datatype, new_config

__all__ = [
    "IDENTITY_BACKEND",
    "IDENTITY_MODEL_FILE",
    "AwaitedIdentityInstance",
    "FakePlugin",
    "IdentityBackend",
    "IdentityInstance",
    "LoopbackClient",
    "LoopbackFrontend",
    "RecordingInstance",
    "RecordingSink",
    "fake_plugin",
    "identity_config",
    "model_source",
    "placement",
    "tritium_register_backends",
    "write_identity_model",
    "write_model",
]

IDENTITY_BACKEND = "identity"
IDENTITY_MODEL_FILE = "model.identity"


# ------------------------------------------------------------------------------------------ identity
def _convert(array: np.ndarray[Any, Any], datatype: DataType) -> np.ndarray[Any, Any]:
    """A copy of ``array`` in ``datatype``'s numpy representation (BYTES elements as ``bytes``)."""
    if datatype is DataType.BYTES:
        out = np.empty(array.shape, dtype=object)
        flat = out.reshape(-1)
        for i, item in enumerate(array.reshape(-1)):
            flat[i] = item if isinstance(item, bytes) else str(item).encode("utf-8")
        return out
    return np.array(array, dtype=datatype.numpy_dtype, copy=True)


def _int_parameter(config: Any, key: str, default: int) -> int:
    if key not in config.parameters:
        return default
    text = config.parameters[key].string_value
    try:
        return int(text)
    except ValueError:
        raise TritiumError.invalid_arg(f"parameter '{key}' must be an integer, got {text!r}") from None


class IdentityInstance(ModelInstance):
    """One instance of an identity model: output *i* = input *i*, cast to the output's datatype."""

    def __init__(self, config: Any) -> None:
        inputs = [t.name for t in config.input]
        self._pairs = [
            (output.name, inputs[i], config_datatype(output))
            for i, output in enumerate(config.output)
            if i < len(inputs)
        ]
        self._delay_s = _int_parameter(config, "execute_delay_ms", 0) / 1000.0
        self._repeat = _int_parameter(config, "decoupled_repeat", 1)
        self.closed = False

    def _outputs(self, inputs: Mapping[str, np.ndarray[Any, Any]], wanted: frozenset[str]) -> dict[str, Any]:
        return {
            out: _convert(inputs[inp], datatype)
            for out, inp, datatype in self._pairs
            if (not wanted or out in wanted) and inp in inputs
        }

    def execute(self, batch: Batch) -> Mapping[str, np.ndarray[Any, Any]]:
        if self._delay_s:
            time.sleep(self._delay_s)
        return self._outputs(batch.inputs, batch.requested_outputs)

    def execute_decoupled(self, request: InferenceRequest, send: ResponseSender) -> None:
        wanted = frozenset(o.name for o in request.requested_outputs)
        inputs = {name: tensor.data for name, tensor in request.inputs.items()}
        for _ in range(self._repeat):
            if self._delay_s:
                time.sleep(self._delay_s)
            send(self._outputs(inputs, wanted), False)
        send(None, True)

    def close(self) -> None:
        self.closed = True


class AwaitedIdentityInstance(IdentityInstance):
    """An identity instance whose executions are awaited on the event loop: each one a
    :class:`tritium.Completion` settled ``execute_delay_ms`` later by a loop timer (as a backend settles one
    when its worker process answers)."""

    pipeline_depth = 4

    def execute_async(self, batch: Batch) -> Completion[Mapping[str, np.ndarray[Any, Any]]]:
        loop = asyncio.get_running_loop()
        done: Completion[Mapping[str, np.ndarray[Any, Any]]] = Completion(loop=loop)
        outputs = self._outputs(batch.inputs, batch.requested_outputs)
        loop.call_later(self._delay_s, _settle, done, outputs)
        return done


def _settle(done: Completion[Any], outputs: Any) -> None:
    if not done.done():
        done.set_result(outputs)


class IdentityBackend(Backend):
    """Backend ``identity``: serves configs shaped like :func:`identity_config` (and Triton's identity
    QA models). Auto-complete adds outputs mirroring the inputs when the config names none; a config with no
    inputs cannot be completed (the model file describes nothing), so it is refused there, as a real backend
    refuses a model file it cannot read, and ``tritium repo check`` reports it."""

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        self.options = dict(options or {})

    def auto_complete_config(self, source: ModelSource, config: ModelConfig) -> ModelConfig:
        if not len(config.input):
            raise TritiumError.invalid_arg(
                f"{source.model_dir / 'config.pbtxt'}: identity model '{config.name}' has no inputs (its model "
                "file describes none: the config must name them)"
            )
        if len(config.output):
            return config
        completed = ModelConfig()
        completed.CopyFrom(config)
        for i, tensor in enumerate(config.input):
            name = "OUTPUT" + tensor.name[5:] if tensor.name.startswith("INPUT") else f"OUTPUT{i}"
            completed.output.add(name=name, data_type=tensor.data_type, dims=list(tensor.dims))
        return completed

    def create_instance(self, source: ModelSource, config: ModelConfig, placement: InstancePlacement) -> ModelInstance:
        if not len(config.input):
            raise TritiumError.invalid_arg(f"identity model '{config.name}' has no inputs")
        parameter = config.parameters.get("awaited_execution")
        if parameter is not None and parameter.string_value.lower() in ("1", "true", "yes", "on"):
            return AwaitedIdentityInstance(config)
        return IdentityInstance(config)


def identity_config(
    name: str = "identity",
    datatype: DataType = DataType.FP32,
    dims: Sequence[int] = (-1,),
    max_batch_size: int = 8,
    *,
    inputs: int = 1,
    decoupled: bool = False,
    dynamic_batching: bool = False,
    instance_count: int = 1,
    execute_delay_ms: int = 0,
    decoupled_repeat: int | None = None,
    awaited_execution: bool = False,
) -> ModelConfig:
    """The config of an identity model: ``INPUT0..`` -> ``OUTPUT0..``, all ``datatype`` and ``dims``."""
    parameters: dict[str, str] = {}
    if execute_delay_ms:
        parameters["execute_delay_ms"] = str(execute_delay_ms)
    if awaited_execution:
        parameters["awaited_execution"] = "true"
    if decoupled_repeat is not None:
        parameters["decoupled_repeat"] = str(decoupled_repeat)
    return new_config(
        name,
        backend=IDENTITY_BACKEND,
        max_batch_size=max_batch_size,
        inputs=[(f"INPUT{i}", datatype, dims) for i in range(inputs)],
        outputs=[(f"OUTPUT{i}", datatype, dims) for i in range(inputs)],
        decoupled=decoupled,
        dynamic_batching=dynamic_batching,
        instance_count=instance_count,
        parameters=parameters,
    )


# -------------------------------------------------------------------------------------- repositories
def write_model(
    repo: str | Path,
    config: ModelConfig,
    *,
    version: int = 1,
    files: Mapping[str, bytes | str] | None = None,
    write_config: bool = True,
) -> Path:
    """Lay out ``<repo>/<config.name>/config.pbtxt`` and ``<version>/<file>`` for each of ``files``
    (an empty version folder when there are none); returns the model directory."""
    model_dir = Path(repo) / config.name
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    if write_config:
        (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))
    for relative, content in (files or {}).items():
        path = version_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
    return model_dir


def write_identity_model(
    repo: str | Path,
    name: str = "identity",
    datatype: DataType = DataType.FP32,
    dims: Sequence[int] = (-1,),
    max_batch_size: int = 8,
    *,
    version: int = 1,
    **options: Any,
) -> Path:
    """Write an identity model (see :func:`identity_config` for ``options``) into ``repo``; returns its
    directory."""
    config = identity_config(name, datatype, dims, max_batch_size, **options)
    return write_model(repo, config, version=version, files={IDENTITY_MODEL_FILE: b""})


def model_source(model_dir: str | Path, version: int = 1, model_file: str = IDENTITY_MODEL_FILE) -> ModelSource:
    """The :class:`tritium.ModelSource` the kernel builds for ``<model_dir>/<version>/<model_file>``."""
    model_dir = Path(model_dir)
    version_dir = model_dir / str(version)
    return ModelSource(
        name=model_dir.name,
        version=version,
        model_dir=model_dir,
        version_dir=version_dir,
        model_file=version_dir / model_file,
    )


def placement(config: Any, index: int = 0, kind: str = "CPU") -> InstancePlacement:
    """A placement like the kernel gives instance ``index`` of a model's first instance group (``kind``
    ``"CPU"`` or ``"GPU"``, device 0)."""
    return InstancePlacement(
        name=f"{config.name}_{index}", kind=kind, device_id=0, group_name=config.name, index=index
    )


# ------------------------------------------------------------------------------------- recorders
class RecordingInstance(ModelInstance):
    """Wraps an instance: records each executed batch and, with ``gate``, waits for it before executing.

    ``started`` is set when an execution begins (wait on it to know an instance is busy).
    """

    def __init__(self, inner: ModelInstance, *, gate: threading.Event | None = None) -> None:
        self.inner = inner
        self.gate = gate
        self.started = threading.Event()
        self._lock = threading.Lock()
        self._batches: list[Batch] = []

    @property
    def batches(self) -> list[Batch]:
        """The batches executed so far (a copy)."""
        with self._lock:
            return list(self._batches)

    def executed_requests(self) -> list[InferenceRequest]:
        """Every request executed so far, in execution order."""
        return [r for b in self.batches for r in b.requests]

    def execute(self, batch: Batch) -> Mapping[str, np.ndarray[Any, Any]]:
        with self._lock:
            self._batches.append(batch)
        self.started.set()
        if self.gate is not None and not self.gate.wait(timeout=30):
            raise TritiumError.internal("RecordingInstance gate was never opened")
        return self.inner.execute(batch)

    def execute_decoupled(self, request: InferenceRequest, send: ResponseSender) -> None:
        self.inner.execute_decoupled(request, send)

    def close(self) -> None:
        self.inner.close()


class RecordingSink(MetricsSink):
    """A metrics sink that keeps every event (``events``), for assertions on what the kernel emits."""

    def __init__(self, service: InferenceService | None = None, options: Mapping[str, Any] | None = None):
        self.events: list[Event] = []
        self.running = False

    def handle(self, event: Event) -> None:
        self.events.append(event)

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False


# --------------------------------------------------------------------------------------- frontend
class LoopbackFrontend(Frontend):
    """A frontend without a network: in-process callers use its methods as a client would use a protocol.

    It behaves as a real frontend must: calls fail with UNAVAILABLE unless started, ``stop`` refuses new
    calls and waits for those in flight, start and stop are idempotent.
    """

    def __init__(self, service: InferenceService, options: Mapping[str, Any] | None = None) -> None:
        self.service = service
        self.options = dict(options or {})
        self._serving = False
        self._in_flight = 0

    async def start(self) -> None:
        self._serving = True

    async def stop(self) -> None:
        self._serving = False
        while self._in_flight:
            await asyncio.sleep(0.005)

    def describe(self) -> str:
        return "loopback (in-process)"

    def _check(self) -> None:
        if not self._serving:
            raise TritiumError.unavailable("loopback frontend is not serving")

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a synchronous service call as a request of this frontend."""
        self._check()
        return fn(*args)

    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        self._check()
        self._in_flight += 1
        try:
            return await self.service.infer(request)
        finally:
            self._in_flight -= 1

    async def infer_stream(self, request: InferenceRequest) -> list[InferenceResponse]:
        self._check()
        self._in_flight += 1
        try:
            return [r async for r in self.service.infer_stream(request)]
        finally:
            self._in_flight -= 1


class LoopbackClient:
    """A :class:`tritium.testing.FrontendClient` for :class:`LoopbackFrontend`: the reference adapter (a
    network frontend's adapter does the same through its protocol's client library)."""

    def __init__(self, frontend: LoopbackFrontend) -> None:
        self.frontend = frontend

    async def live(self) -> bool:
        return bool(self.frontend.call(self.frontend.service.server_live))

    async def ready(self) -> bool:
        return bool(self.frontend.call(self.frontend.service.server_ready))

    async def model_ready(self, model: str) -> bool:
        return bool(self.frontend.call(self.frontend.service.model_ready, model))

    async def server_metadata(self) -> Mapping[str, Any]:
        return dict(self.frontend.call(self.frontend.service.server_metadata))

    async def model_metadata(self, model: str) -> Mapping[str, Any]:
        return dict(self.frontend.call(self.frontend.service.model_metadata, model))

    @staticmethod
    def _request(model: str, inputs: Sequence[Tensor], outputs: Sequence[str] | None) -> InferenceRequest:
        return InferenceRequest(
            model_name=model,
            inputs={t.name: t for t in inputs},
            requested_outputs=[RequestedOutput(name) for name in outputs or ()],
        )

    async def infer(
        self, model: str, inputs: Sequence[Tensor], outputs: Sequence[str] | None = None
    ) -> Mapping[str, np.ndarray[Any, Any]]:
        response = await self.frontend.infer(self._request(model, inputs, outputs))
        return {t.name: t.data for t in response.outputs}

    async def stream_infer(self, model: str, inputs: Sequence[Tensor]) -> Sequence[Mapping[str, np.ndarray[Any, Any]]]:
        responses = await self.frontend.infer_stream(self._request(model, inputs, None))
        return [{t.name: t.data for t in r.outputs} for r in responses]

    async def close(self) -> None:
        """Nothing to close in-process."""


# ----------------------------------------------------------------------------------------- plugin
def _backend_specs() -> list[BackendSpec]:
    return [
        BackendSpec(
            name=IDENTITY_BACKEND,
            factory=IdentityBackend,
            default_model_filename=IDENTITY_MODEL_FILE,
        )
    ]


@hookimpl
def tritium_register_backends() -> list[BackendSpec]:
    """The fake backends: ``identity``."""
    return _backend_specs()


class FakePlugin:
    """The same hooks as this module, as an object (register either, not both)."""

    @hookimpl
    def tritium_register_backends(self) -> list[BackendSpec]:
        """The fake backends: ``identity``."""
        return _backend_specs()


fake_plugin = FakePlugin()
"""An instance of :class:`FakePlugin`: ``Server(options, plugins=[("fakes", fake_plugin)])``."""
