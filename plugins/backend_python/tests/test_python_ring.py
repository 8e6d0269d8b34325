"""The shared-memory rings and the channel over them (``_ring.py``, ``_channel.py``): framing of byte streams
and messages whatever the chunking, messages larger than a ring, arenas, the peer's exit, a corrupted ring,
and no lost wake-up when both sides go to sleep after every message."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tritium_backend_python._channel import PROBE_EVERY, ChannelClosed, ChannelTimeout, connected_channels
from tritium_backend_python._ring import HEADER_BYTES, STRONGLY_ORDERED, Fence, RingCorrupted, RingPair

from tritium import DataType, InferenceRequest, InstancePool, Tensor

pytestmark = pytest.mark.timeout(120)


def ring_pair(capacity: int, strongly_ordered: bool = STRONGLY_ORDERED) -> tuple[RingPair, RingPair]:
    server = RingPair.create(capacity, strongly_ordered=strongly_ordered)
    assert server.fd is not None
    stub = RingPair.attach(os.dup(server.fd), strongly_ordered=strongly_ordered)
    server.close_fd()
    return server, stub


# ---------------------------------------------------------------------------------------------- rings
@settings(max_examples=60, deadline=None)
@given(
    capacity_log=st.integers(min_value=3, max_value=8),
    steps=st.lists(st.one_of(st.binary(max_size=300), st.none()), max_size=60),
    strongly_ordered=st.booleans(),
)
def test_a_ring_delivers_exactly_the_bytes_written_in_order_whatever_the_chunks(capacity_log, steps,
                                                                                strongly_ordered):
    """Writes take what fits (wrapping around the end), reads take everything waiting: concatenated, the
    bytes read are the bytes accepted, in order, and readable + writable is always the capacity (with and
    without the fences of weakly ordered processors)."""
    capacity = 1 << capacity_log
    server, stub = ring_pair(capacity, strongly_ordered)
    try:
        out, inn = server.outbound, stub.inbound
        accepted = bytearray()
        received = bytearray()
        for step in steps:
            if step is None:
                inn.read_into(received)
            else:
                room = out.writable()
                written = out.write(memoryview(step))
                assert written == min(len(step), room)
                accepted += step[:written]
            assert out.readable() + out.writable() == capacity == inn.readable() + inn.writable()
        inn.read_into(received)
        assert received == accepted
        assert inn.readable() == 0 and out.writable() == capacity
    finally:
        server.close()
        stub.close()


def test_the_rings_fence_their_data_only_where_the_processor_reorders():
    calls = []
    for strongly_ordered in (True, False):
        server, stub = ring_pair(64, strongly_ordered)
        try:
            counted = CountingFence(server.fence)
            server.outbound._fence = None if strongly_ordered else counted
            server.outbound.write(memoryview(b"abc"))
            calls.append(counted.calls)
        finally:
            server.close()
            stub.close()
    assert calls == [0, 2]  # x86-like: none; elsewhere: before the data and before the tail


def test_a_fence_is_one_lock_per_thread_and_never_blocks_another_thread():
    fence = Fence()
    done = []

    def many() -> None:
        for _ in range(2000):
            fence()
        done.append(threading.get_ident())

    threads = [threading.Thread(target=many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(done) == 4


class CountingFence:
    def __init__(self, fence: Any) -> None:
        self.fence, self.calls = fence, 0

    def __call__(self) -> None:
        self.calls += 1
        self.fence()


def test_each_direction_has_its_own_ring():
    server, stub = ring_pair(64)
    try:
        assert server.outbound.write(memoryview(b"to stub")) == 7
        assert stub.outbound.write(memoryview(b"to server!")) == 10
        to_stub, to_server = bytearray(), bytearray()
        stub.inbound.read_into(to_stub)
        server.inbound.read_into(to_server)
        assert (bytes(to_stub), bytes(to_server)) == (b"to stub", b"to server!")
    finally:
        server.close()
        stub.close()


def test_a_ring_records_when_it_stopped_being_empty_not_each_write():
    server, stub = ring_pair(64)
    try:
        before = time.monotonic_ns()
        server.outbound.write(memoryview(b"first"))
        filled = stub.inbound.filled_at_ns()
        assert before <= filled <= time.monotonic_ns()
        time.sleep(0.01)
        server.outbound.write(memoryview(b"second"))  # not empty: the time stays the first write's
        assert stub.inbound.filled_at_ns() == filled
        stub.inbound.read_into(bytearray())
        server.outbound.write(memoryview(b"third"))
        assert stub.inbound.filled_at_ns() > filled
    finally:
        server.close()
        stub.close()


def test_a_wait_that_slept_counts_until_the_peer_wrote_not_until_the_wake_up():
    """A late wake-up must not make the next wait skip its polling (else one slow wake-up makes every later
    wait slow, and the channel sleeps for good at rates polling would catch)."""
    server, stub = connected_channels(poll_s=0.001)
    try:
        stub._inbound = SimpleNamespace(filled_at_ns=lambda: 10_000_300_000)  # the peer wrote at 10.0003 s
        assert stub._slept_wait(10.0, 10.005) == pytest.approx(0.0003)  # woke 5 ms later: 0.3 ms counts
        assert stub._slept_wait(10.0004, 10.005) == pytest.approx(0.0046)  # wrote before the wait: a stale word
        assert stub._slept_wait(9.0, 9.5) == pytest.approx(0.5)  # written after the wake-up: not this message
    finally:
        server.close()
        stub.close()


def test_a_channel_that_sleeps_probes_with_a_poll_every_so_many_waits():
    """Sleeping lengthens the gaps a channel measures (the peer waits a wake-up longer for each answer): a
    channel whose gaps exceed its polling window only while it sleeps must still try polling now and then,
    else it never learns that polling would catch every message."""

    class CountingRing:
        def __init__(self, ring: Any) -> None:
            self.ring, self.looks = ring, 0

        def readable(self) -> bool:
            self.looks += 1
            return self.ring.readable()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.ring, name)

    server, stub = connected_channels(poll_s=0.002)
    try:
        counting = CountingRing(server._inbound)
        server._inbound = counting
        server._last_wait = 1.0  # the last gap was far longer than the window: no polling
        polled = []
        for index in range(2 * PROBE_EVERY + 2):
            counting.looks = 0
            server._wait_for_input(time.monotonic() + 0.01)  # nothing comes: 10 ms, longer than the window
            if counting.looks > 10:
                polled.append(index)
        assert polled == [PROBE_EVERY, 2 * PROBE_EVERY + 1]
    finally:
        server.close()
        stub.close()


@pytest.mark.parametrize("head, tail", [(10, 5), (0, 65), (1 << 40, 0)])
def test_control_words_no_correct_peer_writes_raise_ring_corrupted(head, tail):
    server, stub = ring_pair(64)
    try:
        ring = stub.inbound
        words = ring._words
        words[ring._head], words[ring._tail] = head, tail
        with pytest.raises(RingCorrupted):
            ring.read_into(bytearray())
        with pytest.raises(RingCorrupted):
            server.outbound.write(memoryview(b"x"))
    finally:
        server.close()
        stub.close()


def test_a_file_that_is_not_a_ring_file_is_refused(tmp_path):
    path = tmp_path / "not-rings"
    path.write_bytes(b"\0" * (HEADER_BYTES + 128))
    with pytest.raises(RingCorrupted):
        RingPair.attach(os.open(path, os.O_RDWR))


def test_ring_capacity_must_be_a_power_of_two():
    with pytest.raises(ValueError):
        RingPair.create(1000)


def test_doorbell_flags_are_seen_by_the_peer_and_lowered_by_the_ringer():
    server, stub = ring_pair(64)
    try:
        assert not server.peer_wants_data() and not server.peer_sleeps()
        stub.wait_for_data(True)
        assert server.peer_sleeps()
        assert server.peer_wants_data()  # the ringer lowers the flag: one doorbell per sleep
        assert not server.peer_wants_data()
        server.wait_for_room(True)
        assert stub.peer_wants_room() and not stub.peer_wants_room()
    finally:
        server.close()
        stub.close()


# ------------------------------------------------------------------------------------------- channel
values = st.recursive(
    st.one_of(st.integers(), st.text(max_size=20), st.binary(max_size=6000), st.none()),
    lambda children: st.one_of(st.lists(children, max_size=4), st.tuples(children, children)),
    max_leaves=12,
)


def _receive_all(channel: Any, count: int, timeout: float = 10.0) -> list[Any]:
    return [channel.receive(timeout=timeout) for _ in range(count)]


@settings(max_examples=25, deadline=None)
@given(messages=st.lists(values, min_size=1, max_size=8), capacity_log=st.integers(min_value=6, max_value=12))
def test_messages_arrive_whole_and_in_order_through_a_ring_smaller_than_them(messages, capacity_log):
    """The sender blocks for room (the reader on another thread makes it), so any message size works."""
    server, stub = connected_channels(capacity=1 << capacity_log)
    try:
        sender = threading.Thread(target=lambda: [stub.send(m) for m in messages])
        sender.start()
        received = _receive_all(server, len(messages))
        sender.join(10)
        assert received == messages
    finally:
        server.close()
        stub.close()


def test_large_arrays_travel_through_the_arena_and_small_ones_inline():
    server, stub = connected_channels(capacity=1 << 12)
    try:
        big = np.arange(100_000, dtype=np.float32)
        small = np.arange(10, dtype=np.int64)
        for round_ in range(3):  # a new arena, then the same one reused after a reset
            server.send(("t", big + round_, small))
            _kind, got_big, got_small = stub.receive(timeout=10)
            assert stub.buffers_in_last == 1
            np.testing.assert_array_equal(got_big, big + round_)
            np.testing.assert_array_equal(got_small, small)
            assert not got_big.flags.writeable  # a view of the server's arena on the stub side
            server.reset_arena()
        stub.send(("r", big * 2))
        _, back = server.receive(timeout=10)
        np.testing.assert_array_equal(back, big * 2)
        assert back.flags.writeable  # the server copies what it receives
    finally:
        server.close()
        stub.close()


def test_what_the_peer_wrote_before_it_closed_is_read_then_the_channel_reports_closed():
    server, stub = connected_channels()
    try:
        stub.send(("last words", 1))
        stub.send(("last words", 2))
        stub.close()
        assert server.receive(timeout=5) == ("last words", 1)
        assert server.receive(timeout=5) == ("last words", 2)
        with pytest.raises(ChannelClosed):
            server.receive(timeout=5)
    finally:
        server.close()


def test_an_event_loop_reader_gets_messages_then_the_close():
    server, stub = connected_channels()
    try:
        server.start_nonblocking(lambda: None)
        stub.send(("a",))
        stub.send(("b",))
        stub.close()
        assert [m for m, _ in server.pump()] == [("a",), ("b",)]
        with pytest.raises(ChannelClosed):
            server.pump()
    finally:
        server.close()


def test_a_corrupted_ring_is_a_closed_channel_not_a_crash_or_a_hang():
    server, stub = connected_channels()
    try:
        ring = stub._outbound
        ring._words[ring._tail] = ring._words[ring._head] + (1 << 30)  # more than the ring holds
        with pytest.raises(ChannelClosed, match="corrupted"):
            server.receive(timeout=5)
    finally:
        server.close()
        stub.close()


def test_receive_times_out_when_nothing_comes():
    server, stub = connected_channels()
    try:
        start = time.monotonic()
        with pytest.raises(ChannelTimeout):
            server.receive(timeout=0.2)
        assert time.monotonic() - start < 2
    finally:
        server.close()
        stub.close()


def test_a_non_blocking_sender_keeps_what_the_ring_has_no_room_for_until_it_is_read():
    server, stub = connected_channels(capacity=256)
    blocked = []
    try:
        server.start_nonblocking(lambda: blocked.append(True))
        payload = bytes(range(256)) * 8  # 2 KiB: eight rings' worth
        server.send(("big", payload))
        server.send(("after",))
        assert blocked and server.has_tail()
        received: list[Any] = []
        for _ in range(100):  # the loop's turns: write what fits, the stub reads it
            server.write_tail()
            received += [message for message, _ in stub.poll()]
            if len(received) == 2:
                break
        assert received == [("big", payload), ("after",)]
        assert server.write_tail() and not server.has_tail()
    finally:
        server.close()
        stub.close()


# ----------------------------------------------------------------------------------------- wake-ups
def test_a_message_published_between_the_last_look_and_the_flag_is_not_missed():
    """The race the sleep protocol exists for: the stub looks at its ring (empty), the server publishes and
    sees no flag (no doorbell), then the stub raises its flag. It must look again before it sleeps."""
    server, stub = connected_channels()
    try:
        look = stub._fill
        published: list[bool] = []

        def look_then_the_peer_publishes() -> bool:
            found = look()
            if not found and not published:
                published.append(True)
                server.send("late")  # the stub's flag is down: no doorbell
            return found

        stub._fill = look_then_the_peer_publishes  # type: ignore[method-assign]
        start = time.monotonic()
        assert stub.receive(timeout=3) == "late"
        assert time.monotonic() - start < 0.5
    finally:
        server.close()
        stub.close()


def test_an_event_loop_about_to_sleep_is_rung_or_told_to_poll_on():
    import select

    server, stub = connected_channels()
    try:
        server.start_nonblocking(lambda: None)
        stub.send("before")  # published while the server's flag was down: no doorbell
        assert not select.select([server], [], [], 0)[0]
        assert not server.prepare_sleep()  # something to read already: poll on, do not sleep
        assert [m for m, _ in server.poll()] == ["before"]
        assert server.prepare_sleep()  # nothing: the flag stays up, sleep
        stub.send("after")
        assert select.select([server], [], [], 2)[0]  # rung
        assert [m for m, _ in server.pump()] == ["after"]
        stub.send("again")  # the flag went down with the doorbell: no second one
        assert not select.select([server], [], [], 0.05)[0]
        assert [m for m, _ in server.poll()] == ["again"]
    finally:
        server.close()
        stub.close()


def test_a_deferred_doorbell_wakes_a_sleeping_peer_once_for_every_message_sent_before_it():
    """With ``defer_doorbell`` the sends of one loop turn do not ring: the owner rings once afterwards, and
    only when the peer sleeps (its flag up); the messages all arrive."""
    import select

    server, stub = connected_channels()
    due: list[bool] = []
    try:
        server.start_nonblocking(lambda: None, lambda: due.append(True))
        assert stub.prepare_sleep()  # the stub sleeps: its flag is up
        for index in range(5):
            server.send(("execute", index))
        assert due == [True]  # asked once for the five
        assert not select.select([stub], [], [], 0.05)[0]  # nobody rang yet
        server.ring_doorbell_if_wanted()
        assert select.select([stub], [], [], 2)[0]
        assert [m for m, _ in stub.pump()] == [("execute", i) for i in range(5)]
        server.ring_doorbell_if_wanted()  # nothing sent since: no second doorbell
        server.send(("execute", 5))  # the stub is awake (its flag went down with the doorbell)
        assert due == [True, True]
        server.ring_doorbell_if_wanted()
        assert not select.select([stub], [], [], 0.05)[0]
        assert [m for m, _ in stub.poll()] == [("execute", 5)]
    finally:
        server.close()
        stub.close()


def test_leaving_non_blocking_mode_rings_a_doorbell_still_due():
    import select

    server, stub = connected_channels()
    try:
        server.start_nonblocking(lambda: None, lambda: None)
        assert stub.prepare_sleep()
        server.send("pending")
        server.stop_nonblocking()  # the owner lets go before its loop turn ended: the wake-up is not lost
        assert select.select([stub], [], [], 2)[0]
        assert [m for m, _ in stub.pump()] == ["pending"]
    finally:
        server.close()
        stub.close()


# ------------------------------------------------------------------------------- wake-ups, processes
CONFIG = """
max_batch_size: 8
input [ { name: "X" data_type: TYPE_INT32 dims: [ 4 ] } ]
output [ { name: "Y" data_type: TYPE_INT32 dims: [ 4 ] } ]
"""

MODEL = '''
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse(
                    [pb_utils.Tensor("Y", pb_utils.get_input_tensor_by_name(r, "X").as_numpy() + 1)])
                for r in requests]
'''


def _request(value: int) -> InferenceRequest:
    data = np.full((1, 4), value, np.int32)
    return InferenceRequest(model_name="m", inputs={"X": Tensor("X", DataType.INT32, data)}, batch_size=1)


@pytest.mark.parametrize("clients", [1, 4])
def test_no_wake_up_is_lost_when_both_sides_sleep_after_every_message(model_from_source, load, clients):
    """With polling off on both sides every answer and every request goes through the sleep protocol (flag
    up, look again, sleep; the peer rings when it sees the flag). A lost wake-up would stall an execution
    until the one-second safety net; none may take that long, over thousands of executions."""
    config, instance = load(*model_from_source("m", MODEL, CONFIG, TRITIUM_SERVER_POLL_US="0",
                                               TRITIUM_STUB_POLL_US="0"))
    pool = InstancePool.from_config(config, [instance], model_version=1)

    async def client(first: int, count: int) -> None:
        for value in range(first, first + count):
            start = time.monotonic()
            lease = await pool.acquire()
            try:
                result = (await pool.execute(lease, [_request(value)]))[0]
            finally:
                pool.release(lease)
            took = time.monotonic() - start
            assert took < 0.5, f"an execution took {took:.3f} s: a wake-up was lost"
            assert result.outputs[0].data.tolist() == [[value + 1] * 4], result

    async def main() -> None:
        await asyncio.gather(*(client(1000 * c, 1500 // clients) for c in range(clients)))

    asyncio.run(main())


@pytest.mark.parametrize("strongly_ordered", [True, False], ids=["x86-order", "fenced-data"])
def test_no_wake_up_is_lost_between_two_processes_exchanging_bursts(strongly_ordered):
    """A forked echo process and this one, neither polling: bursts of messages of random sizes, each side
    going to sleep as soon as its ring is empty, so that messages keep landing just as the other side raises
    its flag. Every burst must come back long before the one-second safety net would have woken anyone."""
    server, stub = connected_channels(strongly_ordered=strongly_ordered)
    pid = os.fork()
    if pid == 0:  # the echo process
        code = 0
        try:
            server.close()
            while True:
                message = stub.receive()
                if message is None:
                    break
                stub.send(message)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    stub.close()
    try:
        rng = np.random.default_rng(7)
        for burst in range(400):
            sizes = rng.integers(1, 2000, size=int(rng.integers(1, 6)))
            messages = [(burst, bytes(int(size))) for size in sizes]
            start = time.monotonic()
            for message in messages:
                server.send(message)
            assert [server.receive(timeout=5) for _ in messages] == messages
            took = time.monotonic() - start
            assert took < 0.5, f"burst {burst} took {took:.3f} s: a wake-up was lost"
        server.send(None)
    finally:
        _, status = os.waitpid(pid, 0)
        server.close()
    assert status == 0


# ------------------------------------------------------------------------------------------- settings
def test_polling_settings_come_from_parameters_over_backend_config_and_bad_values_are_refused():
    from google.protobuf import text_format
    from tritium_backend_python._settings import SERVER_POLL_US, STUB_POLL_US, model_settings

    from tritium import ConfigError
    from tritium.config import ModelConfig

    def config(**parameters: str) -> ModelConfig:
        parsed = text_format.Parse('name: "m"', ModelConfig())
        for key, value in parameters.items():
            parsed.parameters[key].string_value = value
        return parsed

    defaults = model_settings(config(), {})
    assert (defaults.server_poll_us, defaults.stub_poll_us) == (SERVER_POLL_US, STUB_POLL_US)
    chosen = model_settings(config(TRITIUM_STUB_POLL_US="0"), {"stub-poll-us": "70", "server-poll-us": "9"})
    assert (chosen.server_poll_us, chosen.stub_poll_us) == (9, 0)
    for bad in ("-1", "x", "1.5", "100001"):
        with pytest.raises(ConfigError, match="TRITIUM_STUB_POLL_US"):
            model_settings(config(TRITIUM_STUB_POLL_US=bad), {})
        with pytest.raises(ConfigError, match="TRITIUM_SERVER_POLL_US"):
            model_settings(config(), {"server-poll-us": bad})


def test_a_polling_stub_answers_like_a_sleeping_one(model_from_source, load):
    config, instance = load(*model_from_source("m", MODEL, CONFIG, TRITIUM_SERVER_POLL_US="500",
                                               TRITIUM_STUB_POLL_US="500"))
    assert instance.spec.polling.stub_s == pytest.approx(500e-6)
    pool = InstancePool.from_config(config, [instance], model_version=1)

    async def main() -> list[Any]:
        async def one(value: int) -> Any:
            lease = await pool.acquire()
            try:
                return (await pool.execute(lease, [_request(value)]))[0]
            finally:
                pool.release(lease)

        return [await one(v) for v in range(50)] + list(await asyncio.gather(*(one(v) for v in range(50, 90))))

    results = asyncio.run(main())
    assert [r.outputs[0].data.tolist() for r in results] == [[[v + 1] * 4] for v in range(90)]
