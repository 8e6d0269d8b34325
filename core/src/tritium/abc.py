"""The objects that plugins provide and the kernel drives, and the kernel objects plugins drive.

Hooks only declare components (see :mod:`tritium.hookspecs`); the work is done by the objects below, which
the kernel creates through the factories those declarations name. Everything on the request path is a method
of one of these objects. Plugins implement :class:`Backend` / :class:`ModelInstance`, :class:`Scheduler`,
:class:`Frontend` and :class:`MetricsSink`; the kernel implements :class:`InstanceExecutor` (what a scheduler
runs requests with) and :class:`ModelClient` (how a scheduler or an instance reaches other models). Every
method the kernel calls on a plugin object is declared here, optional ones with their default.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from tritium._base.completion import Completion
from tritium._base.errors import TritiumError
from tritium._base.tensors import InferenceRequest, InferenceResponse
from tritium.protocol import request_prefix

if TYPE_CHECKING:
    from tritium._base.events import Event
    from tritium.config import ModelConfig


class ModelClient(abc.ABC):
    """Submits inference requests to models this server has loaded (ensembles, BLS).

    A client is scoped to the model that holds it (:attr:`SchedulerContext.models`, :attr:`ModelSource.models`):
    requests it submits go through the same validation, scheduling and statistics as client requests, and carry
    the chain of models that submitted them. A request to a model already in its own chain (a cycle, which would
    wait on itself), or one nested deeper than the server's limit, fails with INVALID_ARG instead of
    deadlocking. Errors of the called model are raised as :class:`tritium.TritiumError`.
    """

    @abc.abstractmethod
    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        """Run ``request`` and return its response; call on the event loop (e.g. from a scheduler). A
        decoupled model is refused with UNSUPPORTED: use :meth:`infer_stream`."""

    @abc.abstractmethod
    def infer_stream(self, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:
        """The responses of ``request``, on the event loop: one for a regular model, 0..N for a decoupled
        one (the last has ``final=True`` when the model sends data with its final flag)."""

    @abc.abstractmethod
    def infer_blocking(self, request: InferenceRequest, timeout_s: float | None = None) -> InferenceResponse:
        """:meth:`infer` from a thread that is not the event loop's (e.g. inside :meth:`ModelInstance.execute`),
        waiting at most ``timeout_s`` seconds (None: no limit; then UNAVAILABLE and the request is cancelled).
        Called on the event loop thread it raises INTERNAL instead of blocking the loop forever."""

    @abc.abstractmethod
    def infer_stream_blocking(
        self, request: InferenceRequest, timeout_s: float | None = None
    ) -> Iterator[InferenceResponse]:
        """:meth:`infer_stream` from a thread that is not the event loop's. ``timeout_s`` bounds the whole
        stream; closing the iterator early cancels the request."""

    def is_ready(self, model_name: str, model_version: str = "") -> bool:
        """Whether that model (version ``""``: any version) is loaded and ready. Never raises."""
        return False


class UnreachableModels(ModelClient):
    """The client of a scheduler or instance that runs outside a server (tests, tools): no model is reachable."""

    def _refuse(self, request: InferenceRequest) -> TritiumError:
        return TritiumError.unavailable(
            f"{request_prefix(request.id)}no models are reachable from here (not running inside a server): "
            f"cannot submit a request to model '{request.model_name}'"
        )

    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        raise self._refuse(request)

    async def infer_stream(self, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:
        raise self._refuse(request)
        yield  # pragma: no cover - makes this an async generator

    def infer_blocking(self, request: InferenceRequest, timeout_s: float | None = None) -> InferenceResponse:
        raise self._refuse(request)

    def infer_stream_blocking(
        self, request: InferenceRequest, timeout_s: float | None = None
    ) -> Iterator[InferenceResponse]:
        raise self._refuse(request)


@attrs.define(frozen=True, slots=True)
class ModelSource:
    """Where a model version lives: what a backend needs to auto-complete a configuration and create instances.

    ``model_file`` is the version directory's default model file (it may not exist for auto-complete probes
    on a model without a version folder yet). ``models`` submits requests to other loaded models from the
    model's instances (BLS); it is None in auto-complete probes, where nothing is loaded yet.
    """

    name: str
    version: int
    model_dir: Path
    version_dir: Path
    model_file: Path
    backend_options: Mapping[str, str] = attrs.field(factory=dict)
    models: ModelClient | None = None


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
    """One loaded copy of a model version. ``execute`` runs on a worker thread, never on the event loop.

    An instance that *waits* rather than computes (its work happens in another process or on a device queue)
    may also implement :meth:`execute_async`: the kernel then awaits that on the event loop instead of
    handing ``execute`` to the instance's thread, and may keep up to :attr:`pipeline_depth` executions of it
    in progress at once.
    """

    pipeline_depth: int = 1
    """How many executions the kernel may have in progress on this instance at once. Only used for instances
    that implement :meth:`execute_async`; more than 1 lets such an instance queue the next execution where
    it runs them (a process of its own, a device stream) while the current one runs, instead of waiting for
    a round trip through the kernel between two executions. The instance must then run them in order, one
    at a time, as if each had waited for the one before. Schedulers see each slot as a free instance, so a
    batching model should keep 1 (its batches form while the instance is busy)."""

    @abc.abstractmethod
    def execute(self, batch: Batch) -> Mapping[str, np.ndarray[Any, Any]]:
        """Run the model on ``batch`` and return at least the requested outputs.

        Outputs of a batching model keep the batch dimension first (the kernel slices them back per
        request). BYTES outputs are object arrays of ``bytes``. Raise :class:`tritium.TritiumError` for an
        error the client should see as is; any other exception is reported as INTERNAL.
        """

    def execute_async(self, batch: Batch) -> Awaitable[Mapping[str, np.ndarray[Any, Any]]]:
        """Optional: :meth:`execute` for an instance that waits rather than computes, awaited on the event loop.

        When a class overrides this, the kernel calls it (on the event loop thread, for every execution of
        a model that is not decoupled) instead of running :meth:`execute` on the instance's worker thread:
        no thread hand-off, and with :attr:`pipeline_depth` above 1 several executions in progress at once.
        It must never block the loop (use non-blocking I/O, or ``asyncio.to_thread`` for a blocking step);
        the awaiting task is never cancelled (the kernel shields it). Same outputs and errors as
        :meth:`execute`, which stays required (``model_warmup`` and the conformance kit call it from a
        thread). Write it as ``async def``, or as a plain method returning an ``asyncio.Future`` of the loop
        (cheaper: no task per execution), best a :class:`tritium.Completion` (cheapest: the kernel, the
        scheduler and the frontend then react to the execution's end within the loop callback that settles
        it, with no loop iteration in between; see :meth:`InstanceExecutor.try_start_now`).
        """
        raise NotImplementedError  # pragma: no cover - only called when overridden

    def execute_decoupled(self, request: InferenceRequest, send: ResponseSender) -> None:
        """Serve a decoupled model: call ``send`` zero or more times, the last time with ``final=True``.

        Only called for models whose config sets ``model_transaction_policy { decoupled: true }``.
        """
        from tritium._base.errors import TritiumError

        raise TritiumError.unsupported("this backend does not support decoupled models")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the instance's resources; called once when its model version is unloaded."""


@attrs.define(slots=True, eq=False)
class InstanceLease:
    """A claim on one free instance, from :meth:`InstanceExecutor.acquire` until :meth:`InstanceExecutor.release`.

    ``index`` tells the instances of a model apart (0..size-1; an instance with a
    :attr:`ModelInstance.pipeline_depth` above 1 has that many leases, all with its index); ``running`` is the
    kernel's (the execution in progress on it, so that a release waits for it).
    """

    instance: ModelInstance
    index: int
    running: asyncio.Future[Any] | None = None


class InstanceExecutor(abc.ABC):
    """How a scheduler runs requests on its model's instances (:attr:`SchedulerContext.pool`).

    A scheduler decides which requests run together and when; the executor leases a free instance
    (:meth:`acquire`, first come first served), executes a batch on it (:meth:`execute`: concatenating the
    requests' inputs, calling the instance on its own thread, slicing the outputs back per request, recording
    Triton's statistics and the metrics events) and takes it back (:meth:`release`). Requests a scheduler
    answers without an execution are accounted for with :meth:`reject` (failed before reaching an instance:
    timeout, queue full, cancelled) or :meth:`record_completion` (answered otherwise, e.g. forwarded to other
    models). The kernel implements it; schedulers never see the kernel's classes.
    """

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """Number of instances (0 for a model served without instances, such as an ensemble)."""

    @abc.abstractmethod
    def free_count(self) -> int:
        """Instances not leased right now."""

    @abc.abstractmethod
    async def acquire(self) -> InstanceLease:
        """Wait (first come, first served) until an instance is free and lease it. Cancelling the waiting task
        gives up the wait (an instance handed over meanwhile goes to the next waiter)."""

    @abc.abstractmethod
    def try_acquire(self) -> InstanceLease | None:
        """Lease a free instance if there is one (and nobody waits for one), without waiting."""

    @abc.abstractmethod
    def release(self, lease: InstanceLease) -> None:
        """Give the instance back (deferred until its execution ends if the caller gave up waiting for it)."""

    @abc.abstractmethod
    async def execute(
        self, lease: InstanceLease, requests: Sequence[InferenceRequest]
    ) -> list[InferenceResponse | TritiumError]:
        """Run ``requests`` as one execution of the leased instance: one result per request, in order (an
        error fails only its request). The execution finishes, and is counted, even if the awaiting task is
        cancelled."""

    @abc.abstractmethod
    def execute_stream(self, lease: InstanceLease, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:
        """Run a decoupled model on one request (:meth:`ModelInstance.execute_decoupled`), yielding each
        response as the model sends it; the last one has ``final=True`` (an empty one when the model ended
        with ``send(None, True)``)."""

    @abc.abstractmethod
    def reject(self, request: InferenceRequest, error: TritiumError) -> None:
        """Count a request that failed before it reached an instance (timeout, queue full, cancelled)."""

    @abc.abstractmethod
    def record_completion(self, request: InferenceRequest, error: TritiumError | None = None) -> None:
        """Count a request the scheduler answered without executing it here (e.g. forwarded to other models
        through :attr:`SchedulerContext.models`): a success when ``error`` is None, else a failure."""

    def try_execute_now(self, requests: Sequence[InferenceRequest]) -> list[InferenceResponse | TritiumError] | None:
        """Run ``requests`` synchronously on the calling (event loop) thread when the model runs its
        executions inline (fast models) and an instance is free; None otherwise (then acquire and execute).
        The default: None."""
        return None

    def try_start_now(
        self, requests: Sequence[InferenceRequest]
    ) -> Completion[list[InferenceResponse | TritiumError]] | None:
        """Start ``requests`` as one execution right away, without waiting, when an instance that awaits its
        executions (:meth:`ModelInstance.execute_async`) is free and nobody waits for one: a
        :class:`tritium.Completion` settled with one result per request, in order, when the execution ends
        (the instance is back in the pool and the execution counted by then); None otherwise, and then
        nothing happened (acquire and execute). Call it on the event loop thread. The default: None."""
        return None

    async def stream(self, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:
        """A decoupled request on the next free instance: acquire, :meth:`execute_stream`, release."""
        lease = await self.acquire()
        try:
            async for response in self.execute_stream(lease, request):
                yield response
        finally:
            self.release(lease)


class Backend(abc.ABC):
    """A framework adapter: turns a model version directory and its configuration into instances."""

    def availability(self) -> str | None:
        """None when usable, else why not (e.g. ``"install onnxruntime"``). Must not import the framework
        eagerly at plugin-import time; checking ``importlib.util.find_spec`` is enough."""
        return None

    def supports_gpu(self) -> bool:
        """Whether this backend can run instances on a GPU of this machine (e.g. its framework was built with
        CUDA). Instance groups that name no kind (``KIND_AUTO``) are placed on a GPU only when this is True;
        explicit ``KIND_GPU`` groups keep Triton's rules. The default, False, keeps every unspecified group on
        the CPU: override it in backends that can use a GPU. Called at model load, so it may import the
        framework."""
        return False

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
    """What a scheduler gets: the model's normalized config, its instances, a clock, and the other models.

    ``pool`` executes batches on free instances and records statistics (:class:`InstanceExecutor`; no
    instances for a scheduler whose spec says ``needs_instances=False``); ``clock_ns`` is monotonic
    nanoseconds (replaceable in tests); ``emit`` sends metrics events (queue size changes); ``models``
    submits requests to other loaded models (ensembles), scoped to this model (the default answers
    UNAVAILABLE: no models are reachable outside a server).
    """

    model_name: str
    model_version: int
    config: ModelConfig
    pool: InstanceExecutor
    clock_ns: Callable[[], int]
    emit: Callable[[Event], None]
    options: Mapping[str, Any] = attrs.field(factory=dict)
    models: ModelClient = attrs.field(factory=lambda: UnreachableModels())


class Scheduler(abc.ABC):
    """Decides when and with which other requests a request is executed.

    The data plane validates a request, then calls :meth:`infer_now` (when overridden), else :meth:`infer`;
    requests over a streaming API, and every request of a decoupled model, go to :meth:`infer_stream`. During
    shutdown it calls :meth:`abort_pending` (past the exit timeout) and :meth:`close`; the metrics read
    :meth:`pending_count`.
    """

    @abc.abstractmethod
    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        """Execute a validated request and return its response (raise TritiumError on failure).

        Cancelling the awaiting task cancels the request: it must then never be executed if it has
        not started.
        """

    def infer_now(self, request: InferenceRequest) -> InferenceResponse | Completion[InferenceResponse] | None:
        """The response at once, synchronously, when the request can be answered without waiting (a fast
        model running inline on a free instance, see :meth:`InstanceExecutor.try_execute_now`); or, when it
        was started without waiting (:meth:`InstanceExecutor.try_start_now`), a :class:`tritium.Completion`
        this scheduler settles with the response (or the request's error) when it ends; None when it has to
        wait, and then nothing happened (the data plane goes on with :meth:`infer`). Raises the request's
        error. The default: None (always :meth:`infer`)."""
        return None

    async def infer_stream(self, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:
        """The responses of a streaming request: 0..N for a decoupled model, the last one ``final=True`` (an
        empty final response when the model ended without data); exactly one for a regular model.

        The default yields the one response of :meth:`infer`. A scheduler that serves decoupled models
        overrides this (for instance with :meth:`InstanceExecutor.stream`) and says so with
        ``SchedulerSpec(decoupled=True)``; models whose config sets ``decoupled: true`` load only under such a
        scheduler."""
        yield await self.infer(request)

    def pending_count(self) -> int:
        """Requests queued and not yet handed to an instance (``nv_inference_pending_request_count``)."""
        return 0

    def abort_pending(self, error: TritiumError) -> None:  # noqa: B027 - optional hook
        """Answer every request this scheduler holds that has not started executing with ``error``, and
        refuse new ones: the server's exit timeout passed during shutdown. Executions in progress go on.

        Requests waiting for an instance of the pool are refused by the pool itself; a scheduler that keeps
        its own queue overrides this to empty it. Must not block."""

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

