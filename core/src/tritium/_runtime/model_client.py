"""The kernel's :class:`tritium.abc.ModelClient`: nested requests from a scheduler or a model instance.

Each loaded model version gets a client scoped to its model. A request submitted through it enters the data
plane like a client's (validation, scheduling, statistics), marked with the chain of models it is nested in, so
that a cycle (a model waiting for itself, directly or through others) or a chain deeper than the limit fails
with INVALID_ARG before anything waits. The blocking variants hand the request to the event loop and wait on
the calling thread; a model instance that uses them is kept off the event loop (inline execution would wait on
the very loop that has to serve the nested request).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from tritium._base.errors import TritiumError
from tritium._base.tensors import InferenceRequest, InferenceResponse
from tritium._runtime.call_chain import CALL_CHAIN
from tritium.abc import ModelClient, UnreachableModels
from tritium.protocol import request_prefix

if TYPE_CHECKING:
    from tritium._runtime.dataplane import DataPlane

T = TypeVar("T")

_END = object()

__all__ = ["ScopedModelClient", "UnreachableModels"]


class ScopedModelClient(ModelClient):
    """The client of one model (``caller``), submitting to the data plane on ``loop``.

    ``on_blocking_call`` runs whenever a blocking method is used (the lifecycle keeps the caller's executions
    on their instance threads from then on).
    """

    def __init__(self, service: DataPlane, caller: str, loop: asyncio.AbstractEventLoop) -> None:
        self._service = service
        self.caller = caller
        self._loop = loop
        self.on_blocking_call: Callable[[], None] | None = None

    # ---------------------------------------------------------------------------------- call chain
    def _nest(self, request: InferenceRequest) -> None:
        """Mark ``request`` with the chain it is nested in; INVALID_ARG for a cycle or a chain too deep."""
        ambient = CALL_CHAIN.get()
        chain = ambient if ambient and ambient[-1] == self.caller else (self.caller,)
        target = request.model_name
        if target in chain:
            path = " -> ".join((*chain, target))
            raise TritiumError.invalid_arg(
                f"{request_prefix(request.id)}model '{self.caller}' cannot submit a request to model '{target}': "
                f"'{target}' is already waiting for this request ({path}); a model cannot call itself or a "
                "model that called it"
            )
        limit = self._service.max_call_depth
        if len(chain) >= limit:
            raise TritiumError.invalid_arg(
                f"{request_prefix(request.id)}model '{self.caller}' cannot submit a request to model '{target}': "
                f"requests may nest at most {limit} models deep ({' -> '.join((*chain, target))})"
            )
        request.call_chain = chain

    # ----------------------------------------------------------------------------- event-loop side
    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        self._nest(request)
        return await self._service.infer(request)

    def infer_stream(self, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:
        self._nest(request)
        return self._service.infer_stream(request)

    def is_ready(self, model_name: str, model_version: str = "") -> bool:
        return self._service.model_ready(model_name, model_version)

    # -------------------------------------------------------------------------------- thread side
    def _enter_blocking(self, method: str, request: InferenceRequest) -> None:
        if self.on_blocking_call is not None:
            self.on_blocking_call()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise TritiumError.internal(
                f"{request_prefix(request.id)}ModelClient.{method} was called on the event loop thread, where "
                "it would wait forever; await ModelClient.infer / iterate infer_stream there instead"
            )
        self._nest(request)

    def _submit(self, coroutine: Coroutine[Any, Any, T], request: InferenceRequest) -> concurrent.futures.Future[T]:
        try:
            return asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        except RuntimeError:  # the loop is closed: the server has stopped
            coroutine.close()
            raise TritiumError.unavailable(
                f"{request_prefix(request.id)}the server has stopped: cannot submit a request to model "
                f"'{request.model_name}'"
            ) from None

    def infer_blocking(self, request: InferenceRequest, timeout_s: float | None = None) -> InferenceResponse:
        self._enter_blocking("infer_blocking", request)
        future = self._submit(self._service.infer(request), request)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise _timed_out(request, timeout_s) from None
        except concurrent.futures.CancelledError:
            raise TritiumError.cancelled(f"{request_prefix(request.id)}request cancelled") from None

    def infer_stream_blocking(
        self, request: InferenceRequest, timeout_s: float | None = None
    ) -> Iterator[InferenceResponse]:
        self._enter_blocking("infer_stream_blocking", request)
        items: queue.SimpleQueue[Any] = queue.SimpleQueue()

        async def pump() -> None:
            try:
                async for response in self._service.infer_stream(request):
                    items.put(response)
            except asyncio.CancelledError:
                items.put(TritiumError.cancelled(f"{request_prefix(request.id)}request cancelled"))
                raise
            except BaseException as exc:
                items.put(exc)
            else:
                items.put(_END)

        future = self._submit(pump(), request)
        return _drain(items, future, request, timeout_s)


def _drain(
    items: queue.SimpleQueue[Any],
    future: concurrent.futures.Future[None],
    request: InferenceRequest,
    timeout_s: float | None,
) -> Iterator[InferenceResponse]:
    """The responses ``pump`` puts in ``items``, until its end marker; cancels the stream when left early."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while True:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                item = items.get(timeout=remaining)
            except queue.Empty:
                raise _timed_out(request, timeout_s) from None
            if item is _END:
                return
            if isinstance(item, TritiumError):
                raise item
            if isinstance(item, BaseException):
                raise TritiumError.internal(f"{type(item).__name__}: {item}") from item
            yield item
    finally:
        future.cancel()


def _timed_out(request: InferenceRequest, timeout_s: float | None) -> TritiumError:
    return TritiumError.unavailable(
        f"{request_prefix(request.id)}request to model '{request.model_name}' timed out after {timeout_s} s"
    )
