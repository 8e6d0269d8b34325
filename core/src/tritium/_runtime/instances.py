"""The instances of one model version: the kernel's :class:`tritium.abc.InstanceExecutor`.

A scheduler decides *which* requests run together; the pool runs them. It composes one part per job:
:class:`~tritium._runtime.leases.InstanceLeases` (who runs next on which free instance),
:class:`~tritium._runtime.inline_policy.InlinePolicy` (event loop or worker thread),
:class:`~tritium._runtime.outputs.OutputRenderer` (batch the inputs, render the outputs per request) and
:class:`~tritium._runtime.execution_stats.ExecutionRecorder` (Triton's statistics and the metrics events). What is left
here is the execution itself: one thread per instance (so instances run concurrently and the event loop never
blocks), or, for instances that implement :meth:`~tritium.abc.ModelInstance.execute_async` (they wait rather
than compute), the execution awaited on the event loop with no thread hand-off; the call chain a nested
request runs in; and closing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tritium._base.completion import Completion
from tritium._base.datatypes import DataType
from tritium._base.errors import FailureReason, StatusCode, TritiumError
from tritium._base.events import Event
from tritium._base.stats import ModelStatistics
from tritium._base.tensors import InferenceRequest, InferenceResponse
from tritium._runtime.call_chain import CALL_CHAIN, execution_chain
from tritium._runtime.execution_stats import ExecutionRecorder, Timing
from tritium._runtime.inline_policy import InlinePolicy
from tritium._runtime.instance_thread import InstanceThread
from tritium._runtime.leases import InstanceLeases, awaits_execution
from tritium._runtime.outputs import OutputRenderer, OutputSpec
from tritium.abc import InstanceExecutor, InstanceLease, ModelInstance

if TYPE_CHECKING:
    from tritium.config import ModelConfig

__all__ = ["InstanceLease", "InstancePool", "OutputSpec"]

_log = logging.getLogger("tritium.instances")

Result = InferenceResponse | TritiumError


def _when_ended(running: asyncio.Future[Any], callback: Callable[[asyncio.Future[Any]], None]) -> None:
    """Call ``callback(running)`` when an awaited execution ends: as a :class:`~tritium.Completion` is
    settled (its listener), at once when it has ended already (a done callback would run only after the
    caller's await of the finished future had returned), else as its done callback (in the order added, so
    the first one runs before an awaiting caller's shield callback)."""
    if isinstance(running, Completion):
        running.when_settled(callback)
    elif running.done():
        callback(running)
    else:
        running.add_done_callback(callback)


class InstancePool(InstanceExecutor):
    """The instances of one model version (none for a model served without instances, e.g. an ensemble).

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
        self.model_name = model_name
        self.model_version = model_version
        self.version_label = str(model_version)
        self.config = config
        self.batching = batching
        self.outputs = dict(outputs)
        self.statistics = statistics or ModelStatistics(model_name, self.version_label)
        self._clock = clock_ns
        self._instances = list(instances)
        self.leases = InstanceLeases(self._instances, model_name)
        self.policy = InlinePolicy(inline_threshold_ns)
        self.renderer = OutputRenderer(model_name, self.version_label, self.outputs, batching)
        self.recorder = ExecutionRecorder(model_name, self.version_label, self.statistics, emit, clock_ns)
        self._awaits = [awaits_execution(instance) for instance in self._instances]
        self._all_await = bool(self._awaits) and all(self._awaits)
        if any(self._awaits):
            self.policy.keep_off()  # their executions are awaited on the loop already; never run them inline
        self._threads = [
            InstanceThread(f"tritium-{model_name}-{model_version}_{index}") for index in range(len(self._instances))
        ]
        self._busy = 0

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
        return len(self.leases.free)

    def busy_count(self) -> int:
        """Executions in progress (for utilization metrics)."""
        return self._busy

    async def acquire(self) -> InstanceLease:
        return await self.leases.acquire()

    def try_acquire(self) -> InstanceLease | None:
        return self.leases.try_acquire()

    def release(self, lease: InstanceLease) -> None:
        self.leases.release(lease)

    def refuse_waiting(self, error: TritiumError) -> None:
        """Fail every caller waiting for an instance, and every later one, with ``error``: the server's exit
        timeout passed, so what has not started executing never will. Executions in progress go on."""
        self.leases.refuse_waiting(error)

    # ------------------------------------------------------------------------------------ accounting
    def reject(self, request: InferenceRequest, error: TritiumError) -> None:
        self.recorder.rejected(request, error)

    def record_completion(self, request: InferenceRequest, error: TritiumError | None = None) -> None:
        self.recorder.completed(request, error)

    # ----------------------------------------------------------------------------------- execution
    async def execute(self, lease: InstanceLease, requests: Sequence[InferenceRequest]) -> list[Result]:
        """Run ``requests`` as one execution of the leased instance; one result per request, in order.

        The execution finishes (and is counted) even if the awaiting task is cancelled.
        """
        if not requests:
            return []
        start_ns = self._clock()
        self._busy += 1
        if self.policy.inline:
            try:
                results, timing = self._run_batch(lease.instance, requests)
            finally:
                self._busy -= 1
            self._record(results, timing, requests, start_ns, inline=True)
            return results
        if self._awaits[lease.index]:
            return await self._execute_awaited(lease, requests, start_ns)
        future = self._threads[lease.index].submit(self._run_batch, lease.instance, requests)
        future.add_done_callback(lambda fut: self._finish(fut, requests, start_ns))
        lease.running = future
        results, _timing = await asyncio.shield(future)
        return results

    async def _execute_awaited(
        self, lease: InstanceLease, requests: Sequence[InferenceRequest], start_ns: int
    ) -> list[Result]:
        """:meth:`execute` for an instance with ``execute_async``: awaited on the loop, no thread.

        The execution's outcome is recorded by a callback of the instance's awaitable, whether or not the
        caller still waits (its cancellation does not reach the instance: the awaitable is shielded).
        """
        outcome: list[list[Result]] = []
        running = self._start_awaited(lease.instance, requests, start_ns, outcome)
        lease.running = running
        try:
            await asyncio.shield(running)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not outcome or (task is not None and task.cancelling()):
                raise  # the caller was cancelled (not the instance's awaitable)
        except Exception:
            pass  # the failure is in the outcome
        return outcome[0]

    def _start_awaited(
        self, instance: ModelInstance, requests: Sequence[InferenceRequest], start_ns: int,
        outcome: list[list[Result]],
    ) -> asyncio.Future[Any]:
        """Start ``instance.execute_async`` on the loop. The returned future is done when the execution is;
        by then its results are in ``outcome`` and the execution is recorded (its first done callback, or
        its first listener, called as it is settled, for a :class:`~tritium.Completion`)."""
        timing = Timing()
        clock = self._clock
        t0 = clock()

        def settle(results: list[Result]) -> None:
            self._busy -= 1
            self._record(results, timing, requests, start_ns, inline=False)
            outcome.append(results)

        def settled(results: list[Result]) -> asyncio.Future[Any]:
            settle(results)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future

        try:
            batch = self.renderer.assemble(requests)
        except TritiumError as exc:
            return settled([exc] * len(requests))
        t1 = clock()
        timing.input_ns = t1 - t0
        chain = () if len(requests) == 1 and not requests[0].call_chain else execution_chain(requests, self.model_name)
        token = CALL_CHAIN.set(chain) if chain or CALL_CHAIN.get() else None
        try:
            # A coroutine becomes a task (which copies the call chain); a future is used as it is.
            running: asyncio.Future[Mapping[str, Any]] = instance.execute_async(batch)  # type: ignore[assignment]
            if type(running) is not Completion:
                running = asyncio.ensure_future(running)
        except Exception as exc:
            timing.infer_ns = clock() - t1
            return settled([self._failure(exc)] * len(requests))
        finally:
            if token is not None:
                CALL_CHAIN.reset(token)

        def finished(future: asyncio.Future[Mapping[str, Any]]) -> None:
            t2 = clock()
            begun = getattr(future, "started_ns", None)  # a Completion's: when the backend's work began
            if begun is not None and t1 < begun < t2:
                timing.held_ns = begun - t1
                timing.infer_ns = t2 - begun
            else:
                timing.infer_ns = t2 - t1
            try:
                outputs = future.result()
            except (Exception, asyncio.CancelledError) as exc:
                settle([self._failure(exc)] * len(requests))
                return
            try:
                results = self.renderer.split(requests, outputs, batch.batch_size)
            except Exception as exc:
                results = [self._failure(exc)] * len(requests)
            timing.output_ns = clock() - t2
            settle(results)

        _when_ended(running, finished)  # first: before anything awaiting it resumes
        return running

    def try_start_now(self, requests: Sequence[InferenceRequest]) -> Completion[list[Result]] | None:
        """Start ``requests`` on a free instance that awaits its executions, with no task and no wait (see
        :meth:`tritium.abc.InstanceExecutor.try_start_now`): the lease goes back, and the completion is
        settled, from the callback that records the execution's end."""
        if not requests or not self._all_await:
            return None
        lease = self.leases.try_acquire()
        if lease is None:
            return None
        start_ns = self._clock()
        self._busy += 1
        outcome: list[list[Result]] = []
        running = self._start_awaited(lease.instance, requests, start_ns, outcome)
        done: Completion[list[Result]] = Completion(loop=running.get_loop())  # (the loop: no getpid() call)

        def ended(_running: Any) -> None:  # after the execution was recorded (the first callback)
            self.leases.release_now(lease)
            done.set_result(outcome[0])

        if not running.done():
            lease.running = running
        _when_ended(running, ended)
        return done

    def _failure(self, exc: BaseException) -> TritiumError:
        """The error an exception of ``execute`` / ``execute_async`` answers the batch's requests with."""
        if isinstance(exc, TritiumError):
            exc.reason = FailureReason.BACKEND
            return exc
        if isinstance(exc, asyncio.CancelledError):
            return TritiumError(StatusCode.INTERNAL, "the execution was cancelled", reason=FailureReason.BACKEND)
        _log.error("model '%s' version %s failed", self.model_name, self.version_label, exc_info=exc)
        return TritiumError(StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}", reason=FailureReason.BACKEND)

    def try_execute_now(self, requests: Sequence[InferenceRequest]) -> list[Result] | None:
        """Run ``requests`` now, on the calling (event loop) thread, when this pool runs its executions inline
        (see :class:`InlinePolicy`) and an instance is free; None otherwise (then acquire and execute).

        The instance is used without a lease round trip: nothing else can run on the loop meanwhile.
        Statistics and events are recorded as :meth:`execute` records them.
        """
        leases = self.leases
        if not self.policy.inline or not leases.free or leases.waiters or not requests:
            return None
        start_ns = self._clock()
        self._busy += 1
        try:
            results, timing = self._run_batch(leases.free[0].instance, requests)
        finally:
            self._busy -= 1
        self._record(results, timing, requests, start_ns, inline=True)
        return results

    def keep_executions_on_threads(self) -> None:
        """Never run this pool's executions inline again: its instances wait on nested requests (a
        :class:`tritium.abc.ModelClient`'s blocking calls), which the event loop has to serve meanwhile."""
        self.policy.keep_off()

    async def execute_stream(self, lease: InstanceLease, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:
        """Run a decoupled model on one request, yielding each response as the model sends it.

        The last response yielded has ``final=True``; a model that ends with ``send(None, True)``
        yields an empty final response (the data plane drops it unless the client asked for it).
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[Mapping[str, Any] | None, bool] | BaseException] = asyncio.Queue()
        start_ns = self._clock()
        statistics = self.statistics

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
        ended = False
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
                        statistics.record_response(index, infer_ns=now - last_ns, output_ns=0, ok=True, empty=True)
                        ended = True  # closing the iterator once it has the final response is no failure
                        yield InferenceResponse(
                            model_name=self.model_name, model_version=self.version_label, id=request.id,
                            final=True,
                        )
                        return
                    continue
                tensors = self.renderer.request_outputs(request, outputs, 0, request.batch_size, 0, False)
                done = self._clock()
                statistics.record_response(index, infer_ns=now - last_ns, output_ns=done - now, ok=True, empty=False)
                last_ns = done
                index += 1
                ended = final
                yield InferenceResponse(
                    model_name=self.model_name, model_version=self.version_label, id=request.id,
                    outputs=tensors, final=final,
                )
                if final:
                    return
        except BaseException:
            if not ended:
                ok = False
            raise
        finally:
            self._busy -= 1
            self.recorder.stream_ended(request, start_ns, ok)

    def execute_decoupled(self, lease: InstanceLease, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:
        """Former name of :meth:`execute_stream`."""
        return self.execute_stream(lease, request)

    def _finish(
        self, future: asyncio.Future[tuple[list[Result], Timing]], requests: Sequence[InferenceRequest],
        start_ns: int,
    ) -> None:
        """Record statistics and events for a finished execution (runs on the event loop)."""
        self._busy -= 1
        if future.cancelled() or future.exception() is not None:
            return
        results, timing = future.result()
        self._record(results, timing, requests, start_ns, inline=False)

    def _record(
        self, results: list[Result], timing: Timing, requests: Sequence[InferenceRequest], start_ns: int,
        *, inline: bool,
    ) -> None:
        self.policy.observe(timing.input_ns + timing.infer_ns + timing.output_ns, inline)
        self.recorder.execution(results, timing, requests, start_ns)

    # ------------------------------------------------------------------ worker-thread part of execute
    def _run_batch(
        self, instance: ModelInstance, requests: Sequence[InferenceRequest]
    ) -> tuple[list[Result], Timing]:
        """:meth:`_execute_batch`, with the requests' call chain published for the instance's model client."""
        if len(requests) == 1 and not requests[0].call_chain and not CALL_CHAIN.get():
            return self._execute_batch(instance, requests)  # the common case: one request from a client
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
    ) -> tuple[list[Result], Timing]:
        timing = Timing()
        clock = self._clock
        t0 = clock()
        try:
            batch = self.renderer.assemble(requests)
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
        results = self.renderer.split(requests, outputs, batch.batch_size)
        timing.output_ns = clock() - t2
        return results, timing

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
