"""The thread of one model instance: order, outcomes, cancellation, closing."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tritium._runtime.instance_thread import InstanceThread


class Boom(Exception):
    pass


def outcome(value: int) -> int:
    if value < 0:
        raise Boom(value)
    return value * 2


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-5, 50), max_size=30))
def test_every_call_settles_its_own_future_in_submission_order(values: list[int]) -> None:
    async def scenario() -> None:
        worker = InstanceThread("t")
        ran: list[int] = []

        def call(value: int) -> int:
            ran.append(value)
            return outcome(value)

        futures = [worker.submit(call, v) for v in values]
        settled = await asyncio.gather(*futures, return_exceptions=True)
        worker.close()
        assert ran == values  # one at a time, in order
        for value, result in zip(values, settled, strict=True):
            if value < 0:
                assert isinstance(result, Boom) and result.args == (value,)
            else:
                assert result == value * 2

    asyncio.run(scenario())


async def test_runs_on_its_own_named_thread_started_on_first_use() -> None:
    before = {t.name for t in threading.enumerate()}
    worker = InstanceThread("tritium-m-1_0")
    assert "tritium-m-1_0" not in before | {t.name for t in threading.enumerate()}
    name = await worker.submit(lambda: threading.current_thread().name)
    assert name == "tritium-m-1_0"
    worker.close()
    assert "tritium-m-1_0" not in {t.name for t in threading.enumerate()}


async def test_a_cancelled_future_does_not_stop_the_call() -> None:
    worker = InstanceThread("t")
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.05)
        finished.set()

    future = worker.submit(slow)
    future.cancel()
    after = await worker.submit(lambda: finished.is_set())
    assert after is True  # the next call ran after the cancelled one completed
    worker.close()


async def test_close_runs_what_is_queued_then_refuses_new_calls() -> None:
    worker = InstanceThread("t")
    ran: list[int] = []
    futures = [worker.submit(lambda i=i: (time.sleep(0.005), ran.append(i))) for i in range(5)]
    await asyncio.to_thread(worker.close, True)
    assert ran == [0, 1, 2, 3, 4]
    await asyncio.gather(*futures)
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(lambda: None)
    worker.close()  # twice is harmless


def test_a_call_that_ends_after_its_loop_closed_is_dropped_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    crashes: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashes.append(args.exc_value))
    worker = InstanceThread("loop-gone")
    release = threading.Event()

    async def submit_and_leave() -> None:
        worker.submit(release.wait, 5)

    asyncio.run(submit_and_leave())  # the loop is closed when the call ends
    release.set()
    worker.close()  # joins: the thread served its queue to the end
    assert crashes == []
    assert "loop-gone" not in {t.name for t in threading.enumerate()}


async def test_stop_iteration_is_delivered_as_a_runtime_error() -> None:
    worker = InstanceThread("t")

    def stop() -> None:
        raise StopIteration

    with pytest.raises(RuntimeError, match="StopIteration"):
        await worker.submit(stop)
    worker.close()
