"""The worker/executor control channel (``_multiproc/channel.py``) and the busy polling after its traffic
(``_multiproc/busy_poll.py``): messages arrive whole and in order in batches, and a loop that just read or
wrote a frame keeps looking for the next one for its window, then sleeps."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tritium._multiproc.busy_poll import BusyPoll
from tritium._multiproc.channel import Channel, frame

pytestmark = pytest.mark.timeout(60)

MESSAGE = st.tuples(st.text(max_size=8), st.integers(), st.binary(max_size=64))


async def _connected(busy: BusyPoll | None = None) -> tuple[Channel, Channel, list[Any]]:
    """Two channels over a socketpair on the running loop; the right one's batches go to the list."""
    loop = asyncio.get_running_loop()
    left_sock, right_sock = socket.socketpair()
    received: list[Any] = []
    left = Channel(lambda messages: None, lambda exc: None, busy)
    right = Channel(received.append, lambda exc: None, busy)
    await loop.connect_accepted_socket(lambda: left, left_sock)
    await loop.connect_accepted_socket(lambda: right, right_sock)
    return left, right, received


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(MESSAGE, min_size=1, max_size=20), min_size=1, max_size=8))
def test_messages_arrive_whole_and_in_order_whatever_the_bursts(bursts: list[list[Any]]) -> None:
    async def run() -> list[Any]:
        left, right, received = await _connected()
        for burst in bursts:
            for message in burst:
                left.send(message)
            await asyncio.sleep(0)
        for _ in range(200):
            if sum(len(batch) for batch in received) == sum(len(b) for b in bursts):
                break
            await asyncio.sleep(0.005)
        left.close()
        right.close()
        return [m for batch in received for m in batch]

    assert asyncio.run(run()) == [m for burst in bursts for m in burst]


def test_a_frame_larger_than_the_limit_closes_the_connection() -> None:
    async def run() -> bool:
        left, right, received = await _connected()
        assert left._transport is not None
        left._transport.write((1 << 41).to_bytes(8, "little") + b"x" * 16)
        for _ in range(100):
            if right.closed:
                break
            await asyncio.sleep(0.01)
        left.close()
        return right.closed and not received

    assert asyncio.run(run())


def test_busy_poll_keeps_the_loop_awake_for_its_window_after_traffic_then_stops() -> None:
    async def run() -> None:
        busy = BusyPoll(0.05)
        left, right, received = await _connected(busy)
        assert not busy.polling
        left.send(("ping",))
        assert busy.polling  # the write
        loop = asyncio.get_running_loop()
        start = loop.time()
        selects: list[float | None] = []
        selector = loop._selector  # type: ignore[attr-defined]
        real_select = selector.select

        def spy(timeout: float | None = None) -> Any:
            selects.append(timeout)
            return real_select(timeout)

        selector.select = spy
        try:
            while busy.polling:
                await asyncio.sleep(0.001)
        finally:
            selector.select = real_select
        assert received == [[("ping",)]]
        assert 0.04 <= loop.time() - start < 1.0  # the window, counted from the last frame read
        # The loop never slept while polling (the last two turns come after it stopped).
        assert len(selects) > 10 and all(t == 0 for t in selects[:-2])
        left.close()
        right.close()

    asyncio.run(run())


def test_busy_poll_with_no_window_never_polls() -> None:
    async def run() -> None:
        busy = BusyPoll(0)
        left, right, received = await _connected(busy)
        left.send(("ping",))
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.005)
        assert received and not busy.polling
        left.close()
        right.close()

    asyncio.run(run())


def test_frame_is_a_length_then_the_pickled_list() -> None:
    data = frame([("a", 1)])
    assert int.from_bytes(data[:8], "little") == len(data) - 8
