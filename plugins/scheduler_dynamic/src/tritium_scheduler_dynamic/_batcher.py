"""The dynamic batcher: one asyncio task per model version that forms batches and hands them to instances.

Requests wait on a future while queued. The batcher task waits for a free instance (rejecting timed-out
requests meanwhile), asks the queue what to send (:meth:`BatchQueue.form`), waits for the queue delay when
told to, and executes each batch as one :meth:`tritium.InstanceExecutor.execute` call in a task of its own, so
it can immediately form the next batch for the next free instance. The pool concatenates and splits the
tensors and records Triton's statistics; this module only decides who goes with whom, and when.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from tritium import FailureReason as _FailureReason
from tritium import (
    InferenceRequest,
    InferenceResponse,
    InstanceExecutor,
    InstanceLease,
    QueueSizeChanged,
    Scheduler,
    SchedulerContext,
    TritiumError,
)
from tritium_scheduler_dynamic._queue import BatchQueue, Entry
from tritium_scheduler_dynamic._settings import BatcherSettings
from tritium_scheduler_dynamic._shapes import batch_key

_log = logging.getLogger(__name__)

TIMEOUT_MESSAGE = "Request timeout expired"
QUEUE_FULL_MESSAGE = "Exceeds maximum queue size"
STOPPING_MESSAGE = "Server is stopping, scheduler for model has stopped accepting new inference requests"


def _log_prefix(request: InferenceRequest) -> str:
    """Triton's ``LogRequest()`` prefix of scheduler errors."""
    return f"[request id: {request.id or '<id_unknown>'}] "


class _Pending:
    """A queued request's state held by the batcher: the request, its future, its dispatch order."""

    __slots__ = ("future", "order", "request")

    def __init__(self, request: InferenceRequest, future: asyncio.Future[InferenceResponse]) -> None:
        self.request = request
        self.future = future
        self.order = 0


class DynamicBatcher(Scheduler):
    """Triton's dynamic batcher for one model version (see the package docs for every knob)."""

    def __init__(self, ctx: SchedulerContext, settings: BatcherSettings | None = None) -> None:
        self._ctx = ctx
        self._pool: InstanceExecutor = ctx.pool
        self._decoupled = bool(ctx.config.model_transaction_policy.decoupled)
        self._clock = ctx.clock_ns
        if settings is None:
            settings = BatcherSettings.from_config(ctx.config, ctx.options)
        self.settings = settings
        self._queue = BatchQueue(self.settings)
        self._version = str(ctx.model_version)
        self._hold = self.settings.delay_count
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._wake_ns = 0
        self._waiting_for_instance = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._last_pending = 0
        # preserve_ordering: responses are released in the order requests were put into batches.
        self._next_order = 0
        self._next_release = 0
        self._held: dict[int, tuple[_Pending, InferenceResponse | BaseException]] = {}

    # ----------------------------------------------------------------------------- Scheduler API
    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        if self._closing:
            raise TritiumError.unavailable(_log_prefix(request) + STOPPING_MESSAGE)
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = loop.create_task(self._run(), name=f"dynamic-batcher:{self._ctx.model_name}")
        settings = self.settings
        now = self._clock()
        level = settings.level_of(request.priority)
        pending = _Pending(request, loop.create_future())
        entry = Entry(
            payload=pending,
            batch_size=max(1, request.batch_size),
            level=level,
            key=batch_key(request, settings),
            enqueue_ns=now,
            deadline_ns=settings.policy_of(level).deadline_ns(now, request.timeout_us),
        )
        if not self._queue.push(entry):
            # Like Triton, a refused enqueue is the caller's error only: no statistics are recorded.
            raise TritiumError.unavailable(_log_prefix(request) + QUEUE_FULL_MESSAGE)
        self._queue_changed()
        self._arrived(entry)
        try:
            return await pending.future
        except asyncio.CancelledError:
            if self._queue.remove(entry):
                # Dropped without execution; recorded as Triton records a cancelled queued request.
                self._pool.reject(request, TritiumError.cancelled())
                self._queue_changed()
            raise

    def infer_stream(self, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:
        """A decoupled model's request runs on its own, on the next free instance (no batching: its responses
        come one by one); a regular model's request is batched as :meth:`infer` batches it."""
        if self._decoupled:
            if self._closing:
                raise TritiumError.unavailable(_log_prefix(request) + STOPPING_MESSAGE)
            return self._pool.stream(request)
        return super().infer_stream(request)

    def pending_count(self) -> int:
        return len(self._queue)

    def abort_pending(self, error: TritiumError) -> None:
        """The server's exit timeout passed: answer everything queued with ``error``, accept nothing new.
        Batches already executing go on."""
        self._closing = True
        self._fail_queued(error)
        self._notify()

    async def close(self) -> None:
        """Stop accepting requests, send everything queued without further delay, wait for it."""
        self._closing = True
        self._notify()
        if self._task is not None:
            await asyncio.shield(self._task)
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    # ----------------------------------------------------------------------------- batcher task
    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            self._fail_queued(TritiumError.unavailable(STOPPING_MESSAGE))
            raise
        except Exception as exc:
            if self._closing and isinstance(exc, TritiumError):
                self._fail_queued(exc)  # the pool refused an instance: the exit timeout passed
            else:  # a bug here must not leave requests waiting forever
                _log.exception("dynamic batcher of model '%s' failed", self._ctx.model_name)
                self._fail_queued(TritiumError.internal(f"dynamic batcher failed: {exc}"))
        finally:
            self._task = None

    async def _loop(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                if self._closing:
                    return
                await self._wait(0)
                continue
            if self._hold:
                # TRITONSERVER_DELAY_SCHEDULER: nothing moves until that many requests are queued.
                if len(queue) >= self._hold or self._closing:
                    self._hold = 0
                else:
                    await self._wait(0)
                    continue
            lease = await self._acquire()
            batch = await self._form()
            if batch:
                self._dispatch(lease, batch)
            else:
                self._pool.release(lease)

    async def _acquire(self) -> InstanceLease:
        """A free instance; while none is, reject queued requests as their timeouts expire."""
        lease = self._pool.try_acquire()
        if lease is not None:
            return lease
        acquiring = asyncio.ensure_future(self._pool.acquire())
        self._waiting_for_instance = True
        try:
            while not acquiring.done():
                deadline = self._queue.next_reject_deadline()
                timeout_ns = max(deadline - self._clock() + 1, 1_000) if deadline else 0
                await self._wait(timeout_ns, until=acquiring)
                self._reject(self._queue.reject_expired(self._clock()))
        finally:
            self._waiting_for_instance = False
        return acquiring.result()

    async def _form(self) -> list[Entry]:
        """The next batch for the instance in hand: waits out the queue delay; empty when the queue ran
        dry meanwhile (every request cancelled or timed out)."""
        queue = self._queue
        while True:
            formed = queue.form(self._clock(), flush=self._closing)
            self._reject(formed.rejected)
            if formed.batch or not queue:
                return formed.batch
            wait_ns = formed.wait_ns
            deadline = queue.next_reject_deadline()
            if deadline:
                wait_ns = min(wait_ns, max(deadline - self._clock() + 1, 1_000))
            await self._wait(wait_ns)

    async def _wait(self, timeout_ns: int, until: asyncio.Future[Any] | None = None) -> None:
        """Sleep until a request arrives (see :meth:`_arrived`), close() is called, ``until`` is done,
        or ``timeout_ns`` (0 = no timeout) passed."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        self._wake_ns = self._clock() + timeout_ns if timeout_ns > 0 else 0
        timer = loop.call_later(timeout_ns / 1e9, _wake, waiter) if timeout_ns > 0 else None
        callback = None
        if until is not None:
            def callback(_: asyncio.Future[Any]) -> None:
                _wake(waiter)

            until.add_done_callback(callback)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
            if until is not None and callback is not None:
                until.remove_done_callback(callback)

    def _arrived(self, entry: Entry) -> None:
        """Wake the batcher for a new request when it matters: always while it forms a batch; while it
        waits for an instance, only when the request's timeout comes before the batcher's next wake-up."""
        if self._waiter is None:
            return
        if self._waiting_for_instance and not (
            entry.deadline_ns and (self._wake_ns == 0 or entry.deadline_ns < self._wake_ns)
        ):
            return
        self._notify()

    def _notify(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ------------------------------------------------------------------------------- execution
    def _dispatch(self, lease: InstanceLease, batch: list[Entry]) -> None:
        if self.settings.preserve_ordering:
            for entry in batch:
                entry.payload.order = self._next_order
                self._next_order += 1
        self._queue_changed()
        task = asyncio.get_running_loop().create_task(self._execute(lease, [e.payload for e in batch]))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _execute(self, lease: InstanceLease, batch: Sequence[_Pending]) -> None:
        results: Sequence[InferenceResponse | BaseException] | None = None
        try:
            results = await self._pool.execute(lease, [p.request for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"pool returned {len(results)} results for {len(batch)} requests")
        except Exception as exc:
            _log.exception("executing a batch of model '%s' failed", self._ctx.model_name)
            results = [TritiumError.internal(str(exc), reason=_FailureReason.BACKEND) for _ in batch]
        finally:
            self._pool.release(lease)
            if results is None:  # cancelled (event loop shutting down)
                results = [TritiumError.unavailable(STOPPING_MESSAGE) for _ in batch]
            self._deliver(batch, results)

    def _deliver(
        self, batch: Sequence[_Pending], results: Sequence[InferenceResponse | BaseException]
    ) -> None:
        if not self.settings.preserve_ordering:
            for pending, result in zip(batch, results, strict=True):
                _resolve(pending.future, result)
            return
        held = self._held
        for pending, result in zip(batch, results, strict=True):
            held[pending.order] = (pending, result)
        while self._next_release in held:
            pending, result = held.pop(self._next_release)
            self._next_release += 1
            _resolve(pending.future, result)

    # ---------------------------------------------------------------------------------- failures
    def _reject(self, entries: list[Entry]) -> None:
        """Answer requests whose queue timeout expired (REJECT policy)."""
        if not entries:
            return
        for entry in entries:
            pending: _Pending = entry.payload
            error = TritiumError.unavailable(TIMEOUT_MESSAGE, reason=_FailureReason.REJECTED)
            self._pool.reject(pending.request, error)
            _resolve(pending.future, error)
        self._queue_changed()

    def _fail_queued(self, error: TritiumError) -> None:
        queue = self._queue
        while queue:
            formed = queue.form(self._clock(), flush=True)
            self._reject(formed.rejected)
            for entry in formed.batch:
                _resolve(entry.payload.future, TritiumError(error.code, error.message, reason=error.reason))
        self._queue_changed()

    def _queue_changed(self) -> None:
        size = len(self._queue)
        if size != self._last_pending:
            self._last_pending = size
            self._ctx.emit(QueueSizeChanged(self._ctx.model_name, self._version, size))


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _resolve(future: asyncio.Future[Any], result: InferenceResponse | BaseException) -> None:
    if future.done():  # the caller was cancelled meanwhile
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
