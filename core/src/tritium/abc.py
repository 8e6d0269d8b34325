"""The objects that plugins provide and the kernel drives.

Hooks only declare components (see :mod:`tritium.hookspecs`); the work is done by the objects below, which
the kernel creates through the factories those declarations name. Everything on the request path is a method
of one of these objects.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from tritium._tensors import InferenceRequest, InferenceResponse

if TYPE_CHECKING:
    from tritium._events import Event
    from tritium._instances import InstancePool
    from tritium.config import ModelConfig


@attrs.define(frozen=True, slots=True)
class ModelSource:
    """Where a model version lives: what a backend needs to auto-complete a configuration.

    ``model_file`` is the version directory's default model file (it may not exist for auto-complete probes
    on a model without a version folder yet).
    """

    name: str
    version: int
    model_dir: Path
    version_dir: Path
    model_file: Path
    backend_options: Mapping[str, str] = attrs.field(factory=dict)


@attrs.define(frozen=True, slots=True)
class InstancePlacement:
    """Where one model instance runs. ``kind`` is ``"CPU"`` or ``"GPU"`` (after soft placement)."""

    name: str
    kind: str
    device_id: int
    group_name: str
    index: int


@attrs.define(frozen=True, slots=True)
class Batch:
    """What one execution of a model instance gets.

    ``inputs`` are already concatenated along the batch dimension when several requests were batched
    (``batch_size`` is their total); ``requests`` are the original requests in order, for their parameters.
    """

    inputs: Mapping[str, np.ndarray[Any, Any]]
    requested_outputs: frozenset[str]
    requests: Sequence[InferenceRequest]
    batch_size: int


ResponseSender = Callable[[Mapping[str, np.ndarray[Any, Any]] | None, bool], None]
"""``send(outputs, final)`` for decoupled models: ``outputs`` None with ``final`` True ends the stream."""


class ModelInstance(abc.ABC):
    """One loaded copy of a model version. ``execute`` runs on a worker thread, never on the event loop."""

    @abc.abstractmethod
    def execute(self, batch: Batch) -> Mapping[str, np.ndarray[Any, Any]]:
        """Run the model on ``batch`` and return at least the requested outputs.

        Outputs of a batching model keep the batch dimension first (the kernel slices them back per
        request). BYTES outputs are object arrays of ``bytes``. Raise :class:`tritium.TritiumError` for an
        error the client should see as is; any other exception is reported as INTERNAL.
        """

    def execute_decoupled(self, request: InferenceRequest, send: ResponseSender) -> None:
        """Serve a decoupled model: call ``send`` zero or more times, the last time with ``final=True``.

        Only called for models whose config sets ``model_transaction_policy { decoupled: true }``.
        """
        from tritium._errors import TritiumError

        raise TritiumError.unsupported("this backend does not support decoupled models")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the instance's resources; called once when its model version is unloaded."""


class Backend(abc.ABC):
    """A framework adapter: turns a model version directory and its configuration into instances."""

    def availability(self) -> str | None:
        """None when usable, else why not (e.g. ``"install onnxruntime"``). Must not import the framework
        eagerly at plugin-import time; checking ``importlib.util.find_spec`` is enough."""
        return None

    def auto_complete_config(self, source: ModelSource, config: ModelConfig) -> ModelConfig:
        """Fill what ``config`` leaves out (inputs, outputs, max_batch_size, dynamic_batching) from the
        model file, never overriding what is set; raise :class:`tritium.ConfigError` when the config
        contradicts the model. The default returns ``config`` unchanged."""
        return config

    @abc.abstractmethod
    def create_instance(
        self, source: ModelSource, config: ModelConfig, placement: InstancePlacement
    ) -> ModelInstance:
        """Load one instance of the model. Called on a worker thread; may take long."""


@attrs.define(frozen=True, slots=True)
class SchedulerContext:
    """What a scheduler gets: the model's normalized config, its instance pool, and a clock.

    ``pool`` executes batches on free instances and records statistics; ``clock_ns`` is monotonic
    nanoseconds (replaceable in tests); ``emit`` sends metrics events (queue size changes).
    """

    model_name: str
    model_version: int
    config: ModelConfig
    pool: InstancePool
    clock_ns: Callable[[], int]
    emit: Callable[[Event], None]
    options: Mapping[str, Any] = attrs.field(factory=dict)


class Scheduler(abc.ABC):
    """Decides when and with which other requests a request is executed."""

    @abc.abstractmethod
    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        """Execute a validated request and return its response (raise TritiumError on failure).

        Cancelling the awaiting task cancels the request: it must then never be executed if it has
        not started.
        """

    def pending_count(self) -> int:
        """Requests queued and not yet handed to an instance (``nv_inference_pending_request_count``)."""
        return 0

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Stop accepting and finish what is queued; called before the model version unloads."""


class Frontend(abc.ABC):
    """A network protocol serving the data plane (HTTP, gRPC, ...)."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Bind and start serving; return once the listener accepts connections."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop accepting new connections and requests; return once in-flight requests are answered."""

    def describe(self) -> str:
        """One line for the startup log, e.g. ``"HTTP on 0.0.0.0:8000"``."""
        return type(self).__name__


class MetricsSink(abc.ABC):
    """Receives the kernel's events (request completed, batch executed, model loaded, ...)."""

    @abc.abstractmethod
    def handle(self, event: Event) -> None:
        """Record one event. Called on the request path: must be cheap and must not block. Exceptions are
        caught and logged by the kernel, never shown to clients."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start whatever the sink serves (e.g. an HTTP endpoint for scraping)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop serving."""
