"""The default scheduler: no batching; each request runs on the next free instance, first come first served."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from tritium._base.completion import Completion
from tritium._base.errors import TritiumError
from tritium._base.events import QueueSizeChanged
from tritium._base.tensors import InferenceRequest, InferenceResponse
from tritium.abc import Scheduler, SchedulerContext


class DefaultScheduler(Scheduler):
    """Runs every request on its own (client-side batches only), as Triton does without a scheduling section."""

    def __init__(self, context: SchedulerContext) -> None:
        self._ctx = context
        self._pool = context.pool
        self._pending = 0
        self._version = str(context.model_version)
        self._decoupled = bool(context.config.model_transaction_policy.decoupled)

    def pending_count(self) -> int:
        return self._pending

    def _queue_changed(self, delta: int) -> None:
        self._pending += delta
        self._ctx.emit(QueueSizeChanged(self._ctx.model_name, self._version, self._pending))

    def infer_stream(self, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:
        """A decoupled model's request on the next free instance; a regular model's one response."""
        if self._decoupled:
            return self._pool.stream(request)
        return super().infer_stream(request)

    def infer_now(self, request: InferenceRequest) -> InferenceResponse | Completion[InferenceResponse] | None:
        """Run ``request`` synchronously when its model runs inline and an instance is free (no lease, no
        await), or start it on a free instance that awaits its executions (a completion of its response);
        None when it has to wait, and then nothing happened. Raises the request's error."""
        pool = self._pool
        done = pool.try_execute_now((request,))
        if done is None:
            started = pool.try_start_now((request,))
            if started is None:
                return None
            response: Completion[InferenceResponse] = Completion(loop=started.get_loop())  # (no getpid() call)
            started.when_settled(partial(_first_result, response))
            return response
        result = done[0]
        if type(result) is not InferenceResponse and isinstance(result, TritiumError):
            raise result
        return result  # type: ignore[return-value]

    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        response = self.infer_now(request)
        if response is not None:
            return response if type(response) is InferenceResponse else await response  # type: ignore[misc]
        pool = self._pool
        lease = pool.try_acquire()
        if lease is None:
            self._queue_changed(1)
            try:
                lease = await pool.acquire()
            except asyncio.CancelledError:
                pool.reject(request, TritiumError.cancelled())
                raise
            except TritiumError as exc:  # refused: the server's exit timeout passed
                pool.reject(request, exc)
                raise
            finally:
                self._queue_changed(-1)
        try:
            result = (await pool.execute(lease, (request,)))[0]
        finally:
            pool.release(lease)
        if isinstance(result, TritiumError):
            raise result
        return result


def _first_result(response: Completion[InferenceResponse], started: Completion[list[Any]]) -> None:
    """Settle ``response`` with the one result of a started execution (unless its awaiter gave up)."""
    if response.done():
        return
    result = started.result()[0]
    if type(result) is not InferenceResponse and isinstance(result, TritiumError):
        response.set_exception(result)
    else:
        response.set_result(result)
