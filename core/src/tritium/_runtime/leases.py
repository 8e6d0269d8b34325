"""Leasing the instances of one model version: who runs next on which free instance.

First come, first served: a free instance goes to the longest waiter; a waiter that gives up passes on an
instance handed to it meanwhile; a lease released while its execution still runs (its caller was cancelled)
comes back when the execution ends. After :meth:`InstanceLeases.refuse_waiting` (shutdown past the exit
timeout) every waiter, present and future, gets the error instead.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from tritium._base.errors import TritiumError
from tritium.abc import InstanceLease, ModelInstance


def awaits_execution(instance: ModelInstance) -> bool:
    """Whether the kernel awaits ``instance.execute_async`` on the event loop (its class overrides it)."""
    return type(instance).execute_async is not ModelInstance.execute_async


def pipeline_depth(instance: ModelInstance) -> int:
    """How many executions may be in progress on ``instance`` at once (1 unless it awaits its executions)."""
    if not awaits_execution(instance):
        return 1
    return max(1, int(getattr(instance, "pipeline_depth", 1)))


class InstanceLeases:
    """The free list and the waiters of one model version's instances."""

    def __init__(self, instances: Sequence[ModelInstance], model_name: str) -> None:
        self.model_name = model_name
        # An instance that pipelines its executions (``execute_async`` with ``pipeline_depth`` > 1) has one
        # lease per slot; the slots of all instances interleave, so load spreads over instances first.
        depths = [pipeline_depth(i) for i in instances]
        self.free: deque[InstanceLease] = deque(
            InstanceLease(instance, index)
            for slot in range(max(depths, default=0))
            for index, instance in enumerate(instances)
            if slot < depths[index]
        )
        self.waiters: deque[asyncio.Future[InstanceLease]] = deque()
        self.size = len(self.free)
        self._refusal: TritiumError | None = None

    async def acquire(self) -> InstanceLease:
        """Wait until an instance is free and lease it; raises the error of :meth:`refuse_waiting` once that
        was called, UNSUPPORTED for a model without instances."""
        if self._refusal is not None:
            raise self._refusal
        if self.free and not self.waiters:
            return self.free.popleft()
        if not self.size:
            raise TritiumError.unsupported(f"model '{self.model_name}' has no instances to execute requests on")
        waiter: asyncio.Future[InstanceLease] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release_now(waiter.result())  # handed over just as the caller gave up: pass it on
            else:
                try:
                    self.waiters.remove(waiter)
                except ValueError:
                    pass
            raise

    def try_acquire(self) -> InstanceLease | None:
        """Lease a free instance if there is one (and nobody waits for one), without waiting."""
        if self.free and not self.waiters and self._refusal is None:
            return self.free.popleft()
        return None

    def release(self, lease: InstanceLease) -> None:
        """Give the instance back; deferred until its execution ends if the caller gave up waiting."""
        running = lease.running
        if running is not None and not running.done():
            running.add_done_callback(lambda _fut: self.release_now(lease))
            return
        self.release_now(lease)

    def release_now(self, lease: InstanceLease) -> None:
        """Hand the lease to the longest waiter still waiting, or put it back in the free list."""
        lease.running = None
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(lease)
                return
        self.free.append(lease)

    def refuse_waiting(self, error: TritiumError) -> None:
        """Fail every caller waiting for an instance, and every later one, with ``error``."""
        self._refusal = error
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)
