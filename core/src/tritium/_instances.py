"""Model instances of one model version, and the one way schedulers execute requests on them.

A scheduler decides *which* requests run together; the pool runs them: it waits for a free instance,
concatenates the requests' inputs once along the batch dimension, calls the backend on a worker thread (one
thread per instance, so instances run concurrently and the event loop never blocks), slices the outputs back
per request as views, and records Triton's statistics and the metrics events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from tritium._call_chain import CALL_CHAIN, execution_chain
from tritium._classification import classify
from tritium._datatypes import DataType
from tritium._errors import FailureReason, StatusCode, TritiumError
from tritium._events import BatchExecuted, Event, EventBus, RequestCompleted
from tritium._instance_thread import InstanceThread
from tritium._stats import ModelStatistics
from tritium._tensors import InferenceRequest, InferenceResponse, Tensor
from tritium.abc import Batch, ModelInstance

if TYPE_CHECKING:
    from tritium.config import ModelConfig

_log = logging.getLogger("tritium.instances")

Result = InferenceResponse | TritiumError

_INLINE_WINDOW = 16  # executions per inline/worker-thread decision (see InstancePool._observe)
_MAX_SETBACKS = 6  # a model that keeps leaving inline execution is judged over at most 16 << 6 executions
_BYTES = DataType.BYTES


@attrs.define(slots=True, eq=False)
class InstanceLease:
    """A claim on one free instance, from :meth:`InstancePool.acquire` until :meth:`InstancePool.release`."""

    instance: ModelInstance
    index: int
    running: asyncio.Future[Any] | None = None


@attrs.define(frozen=True, slots=True)
class OutputSpec:
    """How the pool renders one configured output: its datatype and classification labels."""

    datatype: DataType
    labels: tuple[str, ...] | None


@attrs.define(slots=True)
class _Timing:
    input_ns: int = 0
    infer_ns: int = 0
    output_ns: int = 0


def _to_datatype(array: np.ndarray[Any, Any], datatype: DataType) -> np.ndarray[Any, Any]:
    """``array`` in the numpy representation of ``datatype`` (no copy when it already is)."""
    if datatype is _BYTES:
        if array.dtype == object:
            return array
        if array.dtype.kind == "U":
            encoded: np.ndarray[Any, Any] = np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])(array)
            return encoded
        return array.astype(object)
    wanted = datatype.numpy_dtype
    converted: np.ndarray[Any, Any] = array if array.dtype == wanted else array.astype(wanted)
    return converted


def _event_bus(emit: Callable[[Event], None] | None) -> EventBus | None:
    """The bus behind ``emit`` when it is an :meth:`EventBus.emit`: with no sink attached, the pool skips
    building events nobody reads (two objects per request on the hot path)."""
    owner = getattr(emit, "__self__", None)
    return owner if isinstance(owner, EventBus) else None


class InstancePool:
    """The instances of one model version.

    ``outputs`` maps every configured output name to its :class:`OutputSpec`, in config order.
    ``batching`` is True for models with ``max_batch_size > 0``.
    """

    def __init__(
        self,
        *,
        model_name: str,
        model_version: int,
        instances: Sequence[ModelInstance],
        outputs: Mapping[str, OutputSpec],
        batching: bool,
        statistics: ModelStatistics | None = None,
        emit: Callable[[Event], None] | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        config: ModelConfig | None = None,
        inline_threshold_ns: int = 0,
    ) -> None:
        if not instances:
            raise ValueError("an instance pool needs at least one instance")
        self.model_name = model_name
        self.model_version = model_version
        self.version_label = str(model_version)
        self.config = config
        self.batching = batching
        self.outputs = dict(outputs)
        self.statistics = statistics or ModelStatistics(model_name, self.version_label)
        self._emit = emit or (lambda event: None)
        self._clock = clock_ns
        self._instances = list(instances)
        self._free: deque[InstanceLease] = deque(InstanceLease(i, index) for index, i in enumerate(self._instances))
        self._waiters: deque[asyncio.Future[InstanceLease]] = deque()
        self._refusal: TritiumError | None = None
        self._threads = [
            InstanceThread(f"tritium-{model_name}-{model_version}_{index}") for index in range(len(self._instances))
        ]
        self._busy = 0
        self.inline_threshold_ns = inline_threshold_ns
        self._samples = 0
        self._inline = False
        self._window: list[int] = []
        self._setbacks = 0
        self._good_windows = 0
        # Per-output rendering, precomputed: (name, datatype, numpy dtype or None for BYTES, labels).
        self._render = {
            name: (name, spec.datatype, None if spec.datatype is _BYTES else spec.datatype.numpy_dtype, spec.labels)
            for name, spec in self.outputs.items()
        }
        self._render_all = tuple(self._render.values())
        self._all_outputs = frozenset(self.outputs)
        self._bus = _event_bus(emit)
        self._events = emit is not None

    @classmethod
    def from_config(
        cls,
        config: ModelConfig,
        instances: Sequence[ModelInstance],
        *,
        model_version: int,
        labels: Mapping[str, Sequence[str]] | None = None,
        statistics: ModelStatistics | None = None,
        emit: Callable[[Event], None] | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        inline_threshold_ns: int = 0,
    ) -> InstancePool:
        """A pool for ``instances`` of a model with this (normalized) config."""
        labels = labels or {}
        outputs = {
            o.name: OutputSpec(
                DataType.from_config_enum(o.data_type),
                tuple(labels[o.name]) if o.name in labels else None,
            )
            for o in config.output
        }
        return cls(
            model_name=config.name,
            model_version=model_version,
            instances=instances,
            outputs=outputs,
            batching=config.max_batch_size > 0,
            statistics=statistics,
            emit=emit,
            clock_ns=clock_ns,
            config=config,
            inline_threshold_ns=inline_threshold_ns,
        )

    # ------------------------------------------------------------------------------------- leasing
    @property
    def size(self) -> int:
        """Number of instances."""
        return len(self._instances)

    @property
    def instances(self) -> Sequence[ModelInstance]:
        return tuple(self._instances)

    def free_count(self) -> int:
        """Instances not leased right now."""
        return len(self._free)

    def busy_count(self) -> int:
        """Executions in progress (for utilization metrics)."""
        return self._busy

    async def acquire(self) -> InstanceLease:
        """Wait (first come, first served) until an instance is free and lease it; raises the error of
        :meth:`refuse_waiting` once that was called."""
        if self._refusal is not None:
            raise self._refusal
        if self._free and not self._waiters:
            return self._free.popleft()
        waiter: asyncio.Future[InstanceLease] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release_now(waiter.result())  # handed over just as the caller gave up: pass it on
            else:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            raise

    def try_acquire(self) -> InstanceLease | None:
        """Lease a free instance if there is one (and nobody waits for one), without waiting."""
        if self._free and not self._waiters and self._refusal is None:
            return self._free.popleft()
        return None

    def release(self, lease: InstanceLease) -> None:
        """Give the instance back; deferred until its execution ends if the caller gave up waiting."""
        running = lease.running
        if running is not None and not running.done():
            running.add_done_callback(lambda _fut: self._release_now(lease))
            return
        self._release_now(lease)

    def _release_now(self, lease: InstanceLease) -> None:
        """Hand the lease to the longest waiter still waiting, or put it back in the free list."""
        lease.running = None
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(lease)
                return
        self._free.append(lease)

    def refuse_waiting(self, error: TritiumError) -> None:
        """Fail every caller waiting for an instance, and every later one, with ``error``: the server's exit
        timeout passed, so what has not started executing never will. Executions in progress go on."""
        self._refusal = error
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    # ----------------------------------------------------------------------------------- execution
    async def execute(self, lease: InstanceLease, requests: Sequence[InferenceRequest]) -> list[Result]:
        """Run ``requests`` as one execution of the leased instance; one result per request, in order.

        The execution finishes (and is counted) even if the awaiting task is cancelled.
        """
        if not requests:
            return []
        start_ns = self._clock()
        self._busy += 1
        if self._inline:
            try:
                results, timing = self._run_batch(lease.instance, requests)
            finally:
                self._busy -= 1
            self._record(results, timing, requests, start_ns)
            return results
        future = self._threads[lease.index].submit(self._run_batch, lease.instance, requests)
        lease.running = future
        future.add_done_callback(lambda fut: self._finish(fut, requests, start_ns))
        results, _timing = await asyncio.shield(future)
        return results

    def try_execute_now(self, requests: Sequence[InferenceRequest]) -> list[Result] | None:
        """Run ``requests`` now, on the calling (event loop) thread, when this pool runs its executions inline
        (see :meth:`_runs_inline`) and an instance is free; None otherwise (then acquire and execute).

        The instance is used without a lease round trip: nothing else can run on the loop meanwhile.
        Statistics and events are recorded as :meth:`execute` records them.
        """
        if not self._inline or not self._free or self._waiters or not requests:
            return None
        start_ns = self._clock()
        self._busy += 1
        try:
            results, timing = self._run_batch(self._free[0].instance, requests)
        finally:
            self._busy -= 1
        self._record(results, timing, requests, start_ns)
        return results

    def keep_executions_on_threads(self) -> None:
        """Never run this pool's executions inline again: its instances wait on nested requests (a
        :class:`tritium.abc.ModelClient`'s blocking calls), which the event loop has to serve meanwhile."""
        self.inline_threshold_ns = 0
        self._inline = False

    def _runs_inline(self) -> bool:
        """Whether the next execution runs on the event loop thread instead of the instance's worker thread.

        Handing a request to a worker thread and back costs tens of microseconds and GIL contention with the
        event loop; for a model that executes in less than ``inline_threshold_ns`` that overhead dominates, so
        such executions run inline (a blocked loop for less than the threshold, like any per-request work).
        """
        return self._inline

    def _observe(self, timing: _Timing, inline: bool) -> None:
        """Feed one execution's duration to the inline decision.

        Executions are judged in windows of ``_INLINE_WINDOW`` (longer after each move back to the worker
        threads, so a model at the edge does not flap). On the worker threads a window's *fastest*
        execution is the estimate: a thread's execution also waits for the GIL while the event loop holds
        it (up to CPython's 5 ms switch interval), which is exactly the overhead inline execution removes,
        and which would otherwise keep a fast model off the loop under load. Inline, measurements are clean
        and the window's *median* decides: at or above the threshold (larger batches, a slower model), the
        model goes back to its worker threads.
        """
        self._samples += 1
        threshold = self.inline_threshold_ns
        if threshold <= 0 or inline is not self._inline:
            return  # disabled, or an execution that started before the last switch
        window = self._window
        window.append(timing.input_ns + timing.infer_ns + timing.output_ns)
        if not inline:
            if len(window) >= _INLINE_WINDOW << self._setbacks:
                self._inline = min(window) < threshold
                window.clear()
            return
        if len(window) >= _INLINE_WINDOW:
            window.sort()
            if window[len(window) // 2] >= threshold:
                self._inline = False
                self._setbacks = min(self._setbacks + 1, _MAX_SETBACKS)
                self._good_windows = 0
            else:
                self._good_windows += 1
                if self._good_windows >= _INLINE_WINDOW:
                    self._setbacks = 0
            window.clear()

    async def execute_decoupled(
        self, lease: InstanceLease, request: InferenceRequest
    ) -> AsyncIterator[InferenceResponse]:
        """Run a decoupled model on one request, yielding each response as the model sends it.

        The last response yielded has ``final=True``; a model that ends with ``send(None, True)``
        yields an empty final response (the data plane drops it unless the client asked for it).
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[Mapping[str, Any] | None, bool] | BaseException] = asyncio.Queue()
        start_ns = self._clock()

        def send(outputs: Mapping[str, Any] | None, final: bool) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (outputs, final))

        chain = execution_chain((request,), self.model_name)

        def run() -> None:
            token = CALL_CHAIN.set(chain)
            try:
                lease.instance.execute_decoupled(request, send)
            except BaseException as exc:
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, (None, True))
            finally:
                CALL_CHAIN.reset(token)

        self._busy += 1
        future = self._threads[lease.index].submit(run)
        lease.running = future
        index = 0
        ok = True
        last_ns = start_ns
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    ok = False
                    if isinstance(item, TritiumError):
                        item.reason = FailureReason.BACKEND
                        raise item
                    raise TritiumError(
                        StatusCode.INTERNAL, f"{type(item).__name__}: {item}", reason=FailureReason.BACKEND
                    )
                outputs, final = item
                now = self._clock()
                if outputs is None:
                    if final:
                        self.statistics.record_response(
                            index, infer_ns=now - last_ns, output_ns=0, ok=True, empty=True
                        )
                        yield InferenceResponse(
                            model_name=self.model_name, model_version=self.version_label, id=request.id,
                            final=True,
                        )
                        return
                    continue
                tensors = self._request_outputs(request, outputs, 0, request.batch_size, 0, False)
                done = self._clock()
                self.statistics.record_response(
                    index, infer_ns=now - last_ns, output_ns=done - now, ok=True, empty=False
                )
                last_ns = done
                index += 1
                yield InferenceResponse(
                    model_name=self.model_name, model_version=self.version_label, id=request.id,
                    outputs=tensors, final=final,
                )
                if final:
                    return
        except BaseException:
            ok = False
            raise
        finally:
            self._busy -= 1
            end = self._clock()
            request_ns = max(end - request.arrival_ns, 0) if request.arrival_ns else end - start_ns
            queue_ns = max(start_ns - request.arrival_ns, 0) if request.arrival_ns else 0
            if ok:
                self.statistics.record_success(request_ns, queue_ns)
                self.statistics.record_execution(max(request.batch_size, 1), 1, 0, end - start_ns, 0)
            else:
                self.statistics.record_failure(request_ns)
            self._emit(
                RequestCompleted(
                    self.model_name, self.version_label, ok, None if ok else FailureReason.BACKEND,
                    max(request.batch_size, 1), request_ns, queue_ns, 0, end - start_ns, 0,
                )
            )

    def _finish(
        self, future: asyncio.Future[tuple[list[Result], _Timing]], requests: Sequence[InferenceRequest],
        start_ns: int,
    ) -> None:
        """Record statistics and events for a finished execution (runs on the event loop)."""
        self._busy -= 1
        if future.cancelled() or future.exception() is not None:
            return
        results, timing = future.result()
        self._record(results, timing, requests, start_ns, inline=False)

    def _record(
        self,
        results: list[Result],
        timing: _Timing,
        requests: Sequence[InferenceRequest],
        start_ns: int,
        inline: bool = True,
    ) -> None:
        """Statistics and events of one finished execution."""
        self._observe(timing, inline)
        bus = self._bus
        events = self._events and (bus is None or bool(bus.handlers))
        statistics = self.statistics
        input_ns, infer_ns, output_ns = timing.input_ns, timing.infer_ns, timing.output_ns
        if len(requests) == 1:
            request = requests[0]
            result = results[0]
            ok = type(result) is InferenceResponse or isinstance(result, InferenceResponse)
            size = request.batch_size if request.batch_size > 1 else 1
            if infer_ns or ok:
                statistics.record_execution(size, 1, input_ns, infer_ns, output_ns)
                if events:
                    self._emit(BatchExecuted(self.model_name, self.version_label, size, 1))
            now = self._clock()
            arrival = request.arrival_ns
            queue_ns = max(start_ns - arrival, 0) if arrival else 0
            request_ns = max(now - arrival, 0) if arrival else now - start_ns
            if ok:
                statistics.record_success(request_ns, queue_ns)
                reason = None
            else:
                statistics.record_failure(request_ns)
                reason = result.reason  # type: ignore[union-attr]
            if events:
                self._emit(
                    RequestCompleted(
                        self.model_name, self.version_label, reason is None, reason, size, request_ns, queue_ns,
                        input_ns, infer_ns, output_ns,
                    )
                )
            return
        any_ok = any(isinstance(r, InferenceResponse) for r in results)
        if infer_ns or any_ok:
            batch_size = sum(max(r.batch_size, 1) for r in requests)
            statistics.record_execution(batch_size, len(requests), input_ns, infer_ns, output_ns)
            if events:
                self._emit(BatchExecuted(self.model_name, self.version_label, batch_size, len(requests)))
        now = self._clock()
        for request, result in zip(requests, results, strict=True):
            queue_ns = max(start_ns - request.arrival_ns, 0) if request.arrival_ns else 0
            request_ns = max(now - request.arrival_ns, 0) if request.arrival_ns else now - start_ns
            if isinstance(result, InferenceResponse):
                statistics.record_success(request_ns, queue_ns)
                reason = None
            else:
                statistics.record_failure(request_ns)
                reason = result.reason
            if events:
                self._emit(
                    RequestCompleted(
                        self.model_name, self.version_label, reason is None, reason, max(request.batch_size, 1),
                        request_ns, queue_ns, input_ns, infer_ns, output_ns,
                    )
                )

    def reject(self, request: InferenceRequest, error: TritiumError) -> None:
        """Count a request that failed before it reached an instance (timeout, queue full, cancelled)."""
        now = self._clock()
        request_ns = max(now - request.arrival_ns, 0) if request.arrival_ns else 0
        self.statistics.record_failure(request_ns)
        self._emit(
            RequestCompleted(
                self.model_name, self.version_label, False, error.reason, max(request.batch_size, 1),
                request_ns, request_ns, 0, 0, 0,
            )
        )

    # ------------------------------------------------------------------ worker-thread part of execute
    def _run_batch(
        self, instance: ModelInstance, requests: Sequence[InferenceRequest]
    ) -> tuple[list[Result], _Timing]:
        """:meth:`_execute_batch`, with the requests' call chain published for the instance's model client."""
        chain = execution_chain(requests, self.model_name)
        if not chain and not CALL_CHAIN.get():
            return self._execute_batch(instance, requests)
        token = CALL_CHAIN.set(chain)
        try:
            return self._execute_batch(instance, requests)
        finally:
            CALL_CHAIN.reset(token)

    def _execute_batch(
        self, instance: ModelInstance, requests: Sequence[InferenceRequest]
    ) -> tuple[list[Result], _Timing]:
        timing = _Timing()
        clock = self._clock
        t0 = clock()
        try:
            batch = self._assemble(requests)
        except TritiumError as exc:
            return [exc] * len(requests), timing
        t1 = clock()
        timing.input_ns = t1 - t0
        try:
            outputs = instance.execute(batch)
        except TritiumError as exc:
            exc.reason = FailureReason.BACKEND
            timing.infer_ns = clock() - t1
            return [exc] * len(requests), timing
        except Exception as exc:  # a backend bug must fail the requests, not the server
            _log.exception("model '%s' version %s failed", self.model_name, self.version_label)
            error = TritiumError(StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}", reason=FailureReason.BACKEND)
            timing.infer_ns = clock() - t1
            return [error] * len(requests), timing
        t2 = clock()
        timing.infer_ns = t2 - t1
        results = self._split(requests, outputs, batch.batch_size)
        timing.output_ns = clock() - t2
        return results, timing

    def _assemble(self, requests: Sequence[InferenceRequest]) -> Batch:
        first = requests[0]
        if len(requests) == 1:
            inputs = {name: t.data for name, t in first.inputs.items()}
            requested = first.requested_outputs
            wanted = frozenset([o.name for o in requested]) if requested else self._all_outputs
            return Batch(inputs, wanted, requests, first.batch_size if self.batching else 0)
        inputs = {}
        for name in first.inputs:
            try:
                inputs[name] = np.concatenate([r.inputs[name].data for r in requests], axis=0)
            except (KeyError, ValueError) as exc:
                raise TritiumError.internal(
                    f"cannot batch input '{name}' of model '{self.model_name}': {exc}"
                ) from None
        names: set[str] = set()
        for r in requests:
            if not r.requested_outputs:
                names = set(self.outputs)
                break
            names.update(o.name for o in r.requested_outputs)
        batch_size = sum(r.batch_size for r in requests) if self.batching else 0
        return Batch(inputs, frozenset(names), requests, batch_size)

    def _split(
        self, requests: Sequence[InferenceRequest], outputs: Mapping[str, Any], total: int
    ) -> list[Result]:
        results: list[Result] = []
        offset = 0
        sliced = len(requests) > 1
        for request in requests:
            size = request.batch_size
            try:
                tensors = self._request_outputs(request, outputs, offset, size, total, sliced)
            except TritiumError as exc:
                results.append(exc)
            else:
                results.append(
                    InferenceResponse(
                        model_name=self.model_name,
                        model_version=self.version_label,
                        id=request.id,
                        outputs=tensors,
                    )
                )
            offset += size
        return results

    def _request_outputs(
        self,
        request: InferenceRequest,
        outputs: Mapping[str, Any],
        offset: int,
        size: int,
        total: int,
        sliced: bool,
    ) -> list[Tensor]:
        render = self._render
        if request.requested_outputs:
            wanted = [
                (render.get(o.name) or (o.name, None, None, None), o.classification) for o in request.requested_outputs
            ]
        else:
            wanted = [(plan, 0) for plan in self._render_all]
        tensors: list[Tensor] = []
        for (name, datatype, dtype, labels), k in wanted:
            array = outputs.get(name)
            if array is None:
                raise TritiumError.internal(
                    f"model '{self.model_name}' did not produce requested output '{name}'"
                )
            if type(array) is not np.ndarray and not isinstance(array, np.ndarray):
                array = np.asarray(array)
            if datatype is None:
                datatype = DataType.from_numpy(array.dtype)
                dtype = None if datatype is _BYTES else datatype.numpy_dtype
            if sliced and self.batching:
                if array.ndim == 0 or array.shape[0] != total:
                    raise TritiumError.internal(
                        f"output '{name}' of model '{self.model_name}' has batch dimension "
                        f"{array.shape[0] if array.ndim else 'none'}, expected {total}"
                    )
                array = array[offset : offset + size]
            if dtype is None:
                array = _to_datatype(array, datatype)
            elif array.dtype != dtype:
                array = array.astype(dtype)
            if k > 0:
                tensors.append(Tensor(name, _BYTES, classify(array, k, labels, self.batching)))
            else:
                tensors.append(Tensor(name, datatype, array))
        return tensors

    # ------------------------------------------------------------------------------------ shutdown
    def close(self) -> None:
        """Close every instance and stop the worker threads (after executions in progress end)."""
        for thread in self._threads:
            thread.close(wait=True)
        self._close_instances()

    def abandon(self) -> None:
        """Stop the worker threads without waiting for executions in progress, leaving their instances
        open (closing a model under a running execution is unsafe): shutdown past the exit timeout, when
        the process is about to exit anyway."""
        for thread in self._threads:
            thread.close(wait=False)

    def _close_instances(self) -> None:
        for instance in self._instances:
            try:
                instance.close()
            except Exception:
                _log.exception("closing an instance of model '%s' failed", self.model_name)
