"""``tritium.Completion``: an asyncio future whose settle listeners run synchronously, in order, from the call
that settles it (before its done callbacks, which asyncio schedules for a later loop turn)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tritium import Completion


async def test_listeners_run_when_settled_in_order_before_done_callbacks() -> None:
    completion: Completion[int] = Completion()
    seen: list[Any] = []
    completion.add_done_callback(lambda c: seen.append(("done callback", c.result())))
    completion.when_settled(lambda c: seen.append(("first", c.result())))
    completion.when_settled(lambda c: seen.append(("second", c.result())))
    assert seen == []
    completion.set_result(7)
    assert seen == [("first", 7), ("second", 7)]  # synchronously, no loop turn
    await asyncio.sleep(0)
    assert seen[-1] == ("done callback", 7)


async def test_a_listener_added_after_settling_runs_at_once() -> None:
    completion: Completion[str] = Completion()
    completion.set_exception(ValueError("no"))
    seen: list[BaseException | None] = []
    completion.when_settled(lambda c: seen.append(c.exception()))
    assert len(seen) == 1 and isinstance(seen[0], ValueError)


async def test_cancelling_runs_the_listeners_and_a_second_cancel_does_not() -> None:
    completion: Completion[int] = Completion()
    seen: list[bool] = []
    completion.when_settled(lambda c: seen.append(c.cancelled()))
    assert completion.cancel() is True
    assert completion.cancel() is False
    assert seen == [True]


async def test_a_failing_listener_is_reported_and_the_others_still_run() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        completion: Completion[int] = Completion(loop=loop)
        seen: list[int] = []

        def broken(_completion: Completion[int]) -> None:
            raise RuntimeError("listener bug")

        completion.when_settled(broken)
        completion.when_settled(lambda c: seen.append(c.result()))
        completion.set_result(1)
        assert seen == [1]
        assert len(reported) == 1 and isinstance(reported[0]["exception"], RuntimeError)
        assert reported[0]["future"] is completion
    finally:
        loop.set_exception_handler(None)


async def test_it_is_an_asyncio_future_for_everyone_else() -> None:
    completion: Completion[int] = Completion()
    assert asyncio.isfuture(completion) and asyncio.ensure_future(completion) is completion
    asyncio.get_running_loop().call_soon(completion.set_result, 5)
    assert await asyncio.shield(completion) == 5
    done, _ = await asyncio.wait((completion,))
    assert done == {completion}


async def test_settling_twice_is_refused_and_runs_nothing_again() -> None:
    completion: Completion[int] = Completion()
    seen: list[int] = []
    completion.when_settled(lambda c: seen.append(c.result()))
    completion.set_result(1)
    with pytest.raises(asyncio.InvalidStateError):
        completion.set_result(2)
    with pytest.raises(asyncio.InvalidStateError):
        completion.set_exception(ValueError())
    assert seen == [1] and completion.result() == 1


_STEP = st.one_of(
    st.just(("listen",)),
    st.tuples(st.just("result"), st.integers()),
    st.just(("error",)),
    st.just(("cancel",)),
)


@given(st.lists(_STEP, max_size=12))
@settings(max_examples=200, deadline=None)
def test_every_listener_runs_exactly_once_in_order_seeing_the_final_state(steps: list[tuple[Any, ...]]) -> None:
    """Whatever the order of listening and settling: each listener runs once, after the first settle, in the
    order listeners were added, and sees the completion as that first settle left it."""

    async def scenario() -> None:
        completion: Completion[int] = Completion()
        calls: list[tuple[int, str]] = []
        listeners = 0
        first: str | None = None

        def state(c: Completion[int]) -> str:
            if c.cancelled():
                return "cancelled"
            if c.exception() is not None:
                return "error"
            return f"result {c.result()}"

        for step in steps:
            kind = step[0]
            if kind == "listen":
                index = listeners
                listeners += 1
                completion.when_settled(lambda c, index=index: calls.append((index, state(c))))
                continue
            if completion.done():
                if kind == "cancel":
                    assert completion.cancel() is False
                else:
                    with pytest.raises(asyncio.InvalidStateError):
                        if kind == "result":
                            completion.set_result(step[1])
                        else:
                            completion.set_exception(ValueError())
                continue
            if kind == "result":
                completion.set_result(step[1])
            elif kind == "error":
                completion.set_exception(ValueError())
            else:
                completion.cancel()
            first = state(completion)
        if first is None:
            assert calls == []
            completion.cancel()
            first = "cancelled"
        elif not completion.cancelled():
            completion.exception()  # retrieved: no "exception was never retrieved" at exit
        assert [index for index, _ in calls] == list(range(listeners))
        assert all(seen == first for _, seen in calls)

    asyncio.run(scenario())
