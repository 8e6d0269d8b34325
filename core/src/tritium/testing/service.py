"""``ReferenceService``: the reference fake :class:`tritium.InferenceService` for frontend tests.

A frontend's own tests should check its conversions and protocol behaviour without loading models. This
service implements every part of the interface deterministically and declares every
:class:`tritium.ServiceCapability`. Frontend test suites (Tritium's HTTP and gRPC frontends both) use it as it
is, configured with the models they need, or subclass it to change an answer::

    service = ReferenceService(
        models={"echo": ReferenceModel(inputs=[("INPUT0", "FP32", [-1, 16])], outputs=[...])},
        validate=True,                       # refuse requests the kernel would refuse, in its words
    )

Built in: models named in :attr:`ReferenceService.models` (default: ``identity``, OUTPUT<i> = INPUT<i>, and
``repeat``, decoupled, answering INPUT0 ``repeat`` times, a request parameter ``fail_at`` failing it before
that response); unknown models raise Triton's NOT_FOUND; with ``validate`` requests are checked against the
models' configs by the kernel's own validation; requested outputs with a ``classification`` count are rendered
as Triton's classification extension does; a request parameter ``delay_ms``, or the ``hold`` hook, keeps a
regular request in flight (otherwise :meth:`~ReferenceService.infer_nowait` answers synchronously, as the
kernel does for fast models), and ``start_delay_s`` makes it return a :class:`tritium.Completion` settled that
many seconds later instead (as the kernel answers a request it started on an instance that awaits its
executions; the completions handed out are in ``started``); a request parameter ``fail`` raises INTERNAL;
settings (logging, trace) are kept and validated as the kernel validates the keys; load and unload requests
are recorded (``loaded``, ``unloaded``); requests are recorded (``requests``, ``last_request``);
``is_stopping`` drives :attr:`stopping`; ``shared_memory`` is a real :class:`tritium.SharedMemoryRegistry`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs

from tritium._base.completion import Completion
from tritium._base.datatypes import DataType
from tritium._base.errors import TritiumError
from tritium._base.tensors import InferenceRequest, InferenceResponse, Tensor
from tritium._runtime.classification import classify
from tritium._runtime.service import InferenceService, ServiceCapability
from tritium._runtime.shm import SharedMemoryRegistry
from tritium._runtime.validation import RequestValidator

__all__ = ["ReferenceModel", "ReferenceService"]

_LOG_KEYS = ("log_file", "log_info", "log_warning", "log_error", "log_verbose_level", "log_format")


@attrs.define(frozen=True)
class ReferenceModel:
    """A model of the reference service: its tensors as ``(name, datatype, shape)`` (shape with the batch
    dimension, as model metadata shows it), whether it is decoupled, and its max batch size."""

    inputs: Sequence[tuple[str, str, Sequence[int]]] = (("INPUT0", "FP32", (-1, 16)),)
    outputs: Sequence[tuple[str, str, Sequence[int]]] = (("OUTPUT0", "FP32", (-1, 16)),)
    decoupled: bool = False
    max_batch_size: int = 8


class ReferenceService(InferenceService):
    """Every part of :class:`tritium.InferenceService`, deterministic (see the module docstring).

    ``models``, ``extensions`` (of the server metadata) and ``platform`` replace the class defaults;
    ``validate`` checks every request as the kernel's data plane does (names, datatypes, shapes, batch size,
    requested outputs: INVALID_ARG in Triton's words); ``allow_shm`` is ``--allow-client-shm``. The attribute
    ``hold``, an async callable, is awaited before a regular model answers (a request in flight for
    cancellation and shutdown tests); the attribute ``start_delay_s`` (seconds, or None) makes
    :meth:`infer_nowait` start the requests it would answer at once: it returns a :class:`tritium.Completion`
    settled with the answer that much later (also appended to ``started``).
    """

    models: Mapping[str, ReferenceModel] = {
        "identity": ReferenceModel(),
        "repeat": ReferenceModel(decoupled=True),
    }
    extensions: Sequence[str] = ("classification", "model_repository", "statistics", "logging")
    platform = "reference"

    def __init__(
        self,
        *,
        allow_shm: bool = True,
        models: Mapping[str, ReferenceModel] | None = None,
        extensions: Sequence[str] | None = None,
        platform: str | None = None,
        validate: bool = False,
    ) -> None:
        if models is not None:
            self.models = dict(models)
        if extensions is not None:
            self.extensions = tuple(extensions)
        if platform is not None:
            self.platform = platform
        self.validate = validate
        self.hold: Callable[[], Awaitable[None]] | None = None
        self.start_delay_s: float | None = None
        self.started: list[Completion[InferenceResponse]] = []
        self._validators: dict[str, RequestValidator] = {}
        self.requests: list[InferenceRequest] = []
        self.log: dict[str, Any] = {
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
        self.is_stopping = False
        self._shm = SharedMemoryRegistry(allowed=allow_shm)

    # ------------------------------------------------------------------------------ capabilities
    @property
    def capabilities(self) -> frozenset[ServiceCapability]:
        return frozenset(ServiceCapability)

    # ------------------------------------------------------------------------------------ health
    def server_live(self) -> bool:
        return not self.is_stopping

    def server_ready(self) -> bool:
        return not self.is_stopping

    @property
    def stopping(self) -> bool:
        return self.is_stopping

    def model_ready(self, name: str, version: str = "") -> bool:
        return name in self.models and version in ("", "1")

    # ---------------------------------------------------------------------------------- metadata
    def check_model(self, name: str, version: str = "") -> ReferenceModel:
        """The model, or Triton's error for an unknown model or version."""
        model = self.models.get(name)
        if model is None:
            raise TritiumError.not_found(f"Request for unknown model: '{name}' is not found")
        if version not in ("", "1"):
            raise TritiumError.not_found(f"Request for unknown model: '{name}' version {version} is not found")
        return model

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "triton", "version": "2.73.0", "extensions": list(self.extensions)}

    def model_metadata(self, name: str, version: str = "") -> dict[str, Any]:
        model = self.check_model(name, version)

        def tensors(items: Sequence[tuple[str, str, Sequence[int]]]) -> list[dict[str, Any]]:
            return [{"name": n, "datatype": d, "shape": list(s)} for n, d, s in items]

        return {
            "name": name,
            "versions": ["1"],
            "platform": self.platform,
            "inputs": tensors(model.inputs),
            "outputs": tensors(model.outputs),
        }

    def model_config(self, name: str, version: str = "") -> Any:
        from tritium.config import ModelConfig

        model = self.check_model(name, version)
        config = ModelConfig(name=name, backend=self.platform, max_batch_size=model.max_batch_size)
        batched = model.max_batch_size > 0
        for items, field in ((model.inputs, config.input), (model.outputs, config.output)):
            for tensor_name, datatype, shape in items:
                dims = list(shape)[1:] if batched else list(shape)
                field.add(name=tensor_name, data_type=DataType(datatype).config_enum, dims=dims)
        config.model_transaction_policy.decoupled = model.decoupled
        return config

    def is_decoupled(self, name: str, version: str = "") -> bool:
        return self.check_model(name, version).decoupled

    # --------------------------------------------------------------------------------- inference
    @property
    def last_request(self) -> InferenceRequest | None:
        """The last request that reached an inference method, None before any."""
        return self.requests[-1] if self.requests else None

    def answer(self, request: InferenceRequest) -> InferenceResponse:
        """A regular model's response: OUTPUT<i> = INPUT<i> (requested outputs only; a requested
        ``classification`` count renders that output's top entries as ``"value:index"``), the request's
        parameters echoed. A request parameter ``fail`` raises INTERNAL."""
        if request.parameters.get("fail"):
            raise TritiumError.internal(f"{self.platform} failed for '{request.id}'")
        wanted = {o.name: o.classification for o in request.requested_outputs}
        batched = self.models[request.model_name].max_batch_size > 0 if request.model_name in self.models else False
        outputs = []
        for tensor in request.inputs.values():
            name = "OUTPUT" + tensor.name[5:]
            if not tensor.name.startswith("INPUT") or (wanted and name not in wanted):
                continue
            if wanted.get(name):
                outputs.append(Tensor(name, DataType.BYTES, classify(tensor.data, wanted[name], None, batched)))
            else:
                outputs.append(Tensor(name, tensor.datatype, tensor.data))
        return InferenceResponse(
            model_name=request.model_name, model_version="1", id=request.id, outputs=outputs,
            parameters=dict(request.parameters),
        )

    def _accept(self, request: InferenceRequest) -> ReferenceModel:
        """The request's model after recording the request and, with ``validate``, checking it."""
        model = self.check_model(request.model_name)
        self.requests.append(request)
        if self.validate:
            validator = self._validators.get(request.model_name)
            if validator is None:
                validator = self._validators[request.model_name] = RequestValidator(
                    self.model_config(request.model_name)
                )
            validator.validate(request)
        return model

    def infer_nowait(self, request: InferenceRequest) -> InferenceResponse | Awaitable[InferenceResponse]:
        """The answer synchronously, as the kernel answers a fast model, unless the request waits (``hold``,
        a ``delay_ms`` parameter, a decoupled model's refusal): then :meth:`infer`."""
        model = self.models.get(request.model_name)
        if self.hold is not None or request.parameters.get("delay_ms") or model is None or model.decoupled:
            return self.infer(request)
        self._accept(request)
        if self.start_delay_s is None:
            return self.answer(request)
        loop = asyncio.get_running_loop()
        started: Completion[InferenceResponse] = Completion(loop=loop)
        self.started.append(started)
        loop.call_later(self.start_delay_s, self._settle, started, request)
        return started

    def _settle(self, started: Completion[InferenceResponse], request: InferenceRequest) -> None:
        if started.done():
            return  # the frontend gave it up
        try:
            started.set_result(self.answer(request))
        except TritiumError as exc:
            started.set_exception(exc)

    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        model = self._accept(request)
        if model.decoupled:
            raise TritiumError.unsupported(
                f"model '{request.model_name}' uses the decoupled transaction policy: use a streaming API"
            )
        if self.hold is not None:
            await self.hold()
        delay = request.parameters.get("delay_ms", 0)
        if delay:
            await asyncio.sleep(int(delay) / 1000)
        return self.answer(request)

    async def infer_stream(self, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:
        model = self.check_model(request.model_name)
        if not model.decoupled:
            yield await self.infer(request)
            return
        self._accept(request)
        repeat = int(request.parameters.get("repeat", 2))
        fail_at = request.parameters.get("fail_at")
        empty_final = bool(request.parameters.pop("triton_enable_empty_final_response", False))
        for i in range(repeat):
            await asyncio.sleep(0)
            if fail_at is not None and int(fail_at) == i:
                raise TritiumError.internal(f"{self.platform} failed at response {i} of '{request.id}'")
            response = self.answer(request)
            response.parameters["index"] = i
            response.final = i == repeat - 1 and not empty_final
            yield response
        if empty_final:
            yield InferenceResponse(model_name=request.model_name, model_version="1", id=request.id, final=True)

    # -------------------------------------------------------------------------------- statistics
    def statistics(self, name: str = "", version: str = "") -> dict[str, Any]:
        if name:
            self.check_model(name, version)
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
                for n in ([name] if name else sorted(self.models))
            ]
        }

    # ------------------------------------------------------------------------ repository control
    def repository_index(self, repository: str = "", ready_only: bool = False) -> list[dict[str, Any]]:
        return [{"name": n, "version": "1", "state": "READY"} for n in sorted(self.models)]

    async def load_model(
        self, name: str, *, config: str | None = None, files: Mapping[str, bytes] | None = None
    ) -> None:
        if name == "broken":
            raise TritiumError.invalid_arg("failed to load 'broken': no model file")
        self.loaded.append((name, config, dict(files) if files else None))

    async def unload_model(self, name: str, *, unload_dependents: bool = False) -> None:
        self.unloaded.append((name, unload_dependents))

    # --------------------------------------------------------------------------- logging / trace
    def log_settings(self) -> dict[str, Any]:
        return dict(self.log)

    def update_log_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        for key in settings:
            if key not in _LOG_KEYS or key == "log_file":
                raise TritiumError.invalid_arg(f"log setting '{key}' can not be updated")
        self.log.update(settings)
        return dict(self.log)

    def trace_settings(self, model: str = "") -> dict[str, Any]:
        if model:
            self.check_model(model)
        return dict(self.trace)

    def update_trace_settings(self, settings: Mapping[str, Any], model: str = "") -> dict[str, Any]:
        if model:
            self.check_model(model)
        for key, value in settings.items():
            if value is None:
                self.trace.pop(key, None)
            else:
                self.trace[key] = value
        return dict(self.trace)

    # ----------------------------------------------------------------------------- shared memory
    @property
    def shared_memory(self) -> SharedMemoryRegistry:
        return self._shm
