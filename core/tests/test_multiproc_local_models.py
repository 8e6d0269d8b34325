"""Which models run in the worker processes: those that ask for it and can (CPU instances only, not ensembles)."""

from __future__ import annotations

import asyncio

import pytest

from tritium._multiproc.local_models import ForwardBuffer, ForwardingStatistics, runs_in_workers
from tritium.config import parse_model_config

ASK = 'parameters { key: "tritium_run_in_workers" value { string_value: "%s" } }\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('name: "m"\ninstance_group { kind: KIND_CPU }\n' + ASK % "true", True),
        ('name: "m"\ninstance_group { kind: KIND_CPU }\n' + ASK % "on", True),
        ('name: "m"\ninstance_group { kind: KIND_CPU }\n' + ASK % "false", False),
        ('name: "m"\ninstance_group { kind: KIND_CPU }\n', False),
        ('name: "m"\ninstance_group { kind: KIND_GPU }\n' + ASK % "true", False),
        ('name: "m"\ninstance_group { kind: KIND_CPU }\ninstance_group { kind: KIND_GPU }\n' + ASK % "true", False),
        ('name: "m"\nplatform: "ensemble"\n' + ASK % "true", False),
        ('name: "m"\ninstance_group { kind: KIND_CPU }\n' + ASK % "maybe", False),
    ],
)
def test_runs_in_workers(text: str, expected: bool) -> None:
    assert runs_in_workers(parse_model_config(text)) is expected


def test_forwarding_statistics_forward_every_update() -> None:
    sent: list[object] = []
    stats = ForwardingStatistics("m", "1", forward=sent.append)
    stats.record_execution(4, 2, 1, 2, 3)
    stats.record_success(10, 5)
    stats.record_failure(7)
    stats.record_response(0, infer_ns=1, output_ns=2, ok=True, empty=False)
    assert [m[3] for m in sent] == ["record_execution", "record_success", "record_failure", "record_response"]
    assert sent[0] == ("stat", "m", "1", "record_execution", (4, 2, 1, 2, 3), {})


async def test_forward_buffer_sends_one_batch_per_interval() -> None:
    batches: list[list[object]] = []
    buffer = ForwardBuffer(batches.append, interval=0.02)
    for i in range(50):
        buffer.add(i)
    assert batches == []  # nothing leaves at once: one executor wake-up per interval, not per request
    await asyncio.sleep(0.1)
    assert batches == [list(range(50))]
    buffer.add("late")
    await asyncio.sleep(0.1)
    assert batches == [list(range(50)), ["late"]]


async def test_forward_buffer_flush_sends_what_waits_and_cancels_the_timer() -> None:
    batches: list[list[object]] = []
    buffer = ForwardBuffer(batches.append, interval=0.02)
    buffer.flush()
    assert batches == []  # nothing waiting: no empty message
    buffer.add("a")
    buffer.add("b")
    buffer.flush()
    assert batches == [["a", "b"]]
    await asyncio.sleep(0.1)
    assert batches == [["a", "b"]]  # the cancelled timer sent nothing more


async def test_forward_buffer_takes_messages_from_other_threads_through_its_loop() -> None:
    batches: list[list[object]] = []
    buffer = ForwardBuffer(batches.append, interval=0.02)
    buffer.add("on the loop")  # binds the buffer to this loop
    await asyncio.to_thread(buffer.add, "from a backend thread")
    await asyncio.sleep(0.1)
    assert batches == [["on the loop", "from a backend thread"]]


def test_forward_buffer_refuses_a_first_message_off_any_loop() -> None:
    buffer = ForwardBuffer(lambda batch: None)
    with pytest.raises(RuntimeError, match="event loop"):
        buffer.add("x")
