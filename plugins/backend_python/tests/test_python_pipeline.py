"""Isolated instances executed on the event loop (``execute_async``, see ``_pipeline.py``): several executions
in flight to one stub, run one at a time in order, with crashes, hangs and large tensors handled as in the
blocking path."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import numpy as np
import pytest

from tritium import (
    Completion,
    DataType,
    InferenceRequest,
    InferenceResponse,
    InstancePool,
    StatusCode,
    Tensor,
    TritiumError,
)

pytestmark = pytest.mark.timeout(120)

CONFIG = """
max_batch_size: 4
input [ { name: "X" data_type: TYPE_INT32 dims: [ -1 ] } ]
output [ { name: "Y" data_type: TYPE_INT32 dims: [ -1 ] }, { name: "N" data_type: TYPE_INT32 dims: [ 1 ] } ]
"""

MODEL = '''
import os
import time
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        self.count = 0

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
            first = int(x.reshape(-1)[0])
            if first == 4:
                os._exit(3)
            if first == 5:
                time.sleep(60)
            if first == 6:
                pb_utils.Logger.log_warn("six seen")
            self.count += 1
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("Y", (x * 10).astype(np.int32)),
                pb_utils.Tensor("N", np.array([[self.count]], np.int32)),
            ]))
        return responses
'''


def request(*values: int) -> InferenceRequest:
    data = np.array([values], np.int32)
    return InferenceRequest(model_name="m", inputs={"X": Tensor("X", DataType.INT32, data)}, batch_size=1)


async def infer(pool: InstancePool, req: InferenceRequest) -> InferenceResponse | TritiumError:
    lease = await pool.acquire()
    try:
        return (await pool.execute(lease, [req]))[0]
    finally:
        pool.release(lease)


def outputs(result: InferenceResponse | TritiumError) -> dict[str, np.ndarray]:
    assert isinstance(result, InferenceResponse), result
    return {t.name: t.data for t in result.outputs}


@pytest.fixture
def loaded(model_from_source, load):
    """``loaded(**parameters) -> (pool, instance)``: the model in an instance pool, as the server runs it."""

    def make(**parameters: str):
        config, instance = load(*model_from_source("m", MODEL, CONFIG, **parameters))
        return InstancePool.from_config(config, [instance], model_version=1), instance

    return make


def test_executions_are_pipelined_in_order_one_request_each(loaded):
    pool, instance = loaded()
    assert instance.pipeline_depth == 64 and pool.free_count() == 64

    async def main() -> list[InferenceResponse | TritiumError]:
        return await asyncio.gather(*(infer(pool, request(v, v + 1)) for v in range(10, 50)))

    results = asyncio.run(main())
    for value, result in zip(range(10, 50), results, strict=True):
        assert outputs(result)["Y"].tolist() == [[value * 10, value * 10 + 10]]
    assert sorted(int(outputs(r)["N"][0, 0]) for r in results) == list(range(1, 41))  # 40 execute calls
    assert instance.execute(_batch(pool, request(7)))["Y"].tolist() == [[70]]  # the blocking path after the loop


def _batch(pool: InstancePool, req: InferenceRequest):
    return pool.renderer.assemble([req])


def test_pipeline_depth_setting(loaded):
    pool, instance = loaded(TRITIUM_PIPELINE_DEPTH="1")
    assert instance.pipeline_depth == 1 and pool.free_count() == 1
    assert outputs(asyncio.run(infer(pool, request(2))))["Y"].tolist() == [[20]]


def test_a_crash_fails_its_execution_and_the_one_queued_behind_runs_on_the_restarted_stub(loaded):
    pool, instance = loaded()
    first_pid = instance._stub.pid

    async def main() -> list[InferenceResponse | TritiumError]:
        return await asyncio.gather(infer(pool, request(4)), infer(pool, request(8)))

    crashed, behind = asyncio.run(main())
    assert isinstance(crashed, TritiumError) and crashed.code is StatusCode.INTERNAL
    assert "exited unexpectedly" in crashed.message and "exit status 3" in crashed.message
    assert outputs(behind)["Y"].tolist() == [[80]]  # it had not started: executed again, as Triton would
    assert outputs(asyncio.run(infer(pool, request(9))))["Y"].tolist() == [[90]]
    assert instance._stub.pid != first_pid


def test_a_stub_killed_between_executions_is_replaced(loaded):
    pool, instance = loaded()

    async def twice() -> None:
        assert outputs(await infer(pool, request(1)))["Y"].tolist() == [[10]]
        os.kill(instance._stub.pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        result = await infer(pool, request(2))
        if isinstance(result, TritiumError):  # the loss may be seen by this execution: then the next one runs
            assert "exited unexpectedly" in result.message
            result = await infer(pool, request(2))
        assert outputs(result)["Y"].tolist() == [[20]]

    asyncio.run(twice())


def test_a_hung_execution_times_out_and_the_one_queued_behind_runs_on_the_new_stub(loaded):
    pool, _ = loaded(TRITIUM_EXECUTE_TIMEOUT_SECONDS="1")

    async def main() -> list[InferenceResponse | TritiumError]:
        return await asyncio.gather(infer(pool, request(5)), infer(pool, request(8)))

    started = time.monotonic()
    hung, behind = asyncio.run(main())
    assert time.monotonic() - started < 20
    assert isinstance(hung, TritiumError) and "took longer than 1 s" in hung.message
    assert outputs(behind)["Y"].tolist() == [[80]]
    assert outputs(asyncio.run(infer(pool, request(8))))["Y"].tolist() == [[80]]


def test_large_tensors_through_shared_memory_stay_correct_under_pipelining(loaded):
    pool, _ = loaded()
    sizes = [3, 70_000, 5, 200_000, 8, 50_000, 1, 120_000] * 3  # small ones pipeline, large ones use the arenas

    async def main() -> list[InferenceResponse | TritiumError]:
        return await asyncio.gather(*(infer(pool, request(*range(100 + i, 100 + i + n))) for i, n in enumerate(sizes)))

    for i, (n, result) in enumerate(zip(sizes, asyncio.run(main()), strict=True)):
        expected = np.arange(100 + i, 100 + i + n, dtype=np.int32).reshape(1, n) * 10
        assert np.array_equal(outputs(result)["Y"], expected)


def test_model_logs_reach_the_server_log_during_pipelined_executions(loaded, caplog):
    pool, _ = loaded()
    with caplog.at_level("WARNING", logger="tritium.backend.python"):
        asyncio.run(infer(pool, request(6)))
    assert any("six seen" in record.getMessage() for record in caplog.records)


# ------------------------------------------------------------ started at once (InstancePool.try_start_now)
def _started(pool: InstancePool, req: InferenceRequest) -> Completion[list[InferenceResponse | TritiumError]]:
    started = pool.try_start_now([req])
    assert started is not None
    return started


def test_started_executions_are_answered_in_order_as_the_stub_answers(loaded):
    """Executions started without a task: each one's listeners run when its answer is read from the ring."""
    pool, _ = loaded()

    async def main() -> list[tuple[int, int]]:
        heard: list[tuple[int, int]] = []
        started = [_started(pool, request(v)) for v in range(10, 30)]  # (4, 5, 6: the model's crash, hang, log)
        for value, completion in zip(range(10, 30), started, strict=True):
            completion.when_settled(
                lambda c, value=value: heard.append((value, int(outputs(c.result()[0])["Y"][0, 0])))
            )
        await asyncio.gather(*started)
        return heard

    heard = asyncio.run(main())
    assert heard == [(v, v * 10) for v in range(10, 30)]
    assert pool.free_count() == 64 and pool.statistics.execution_count == 20


def test_a_crash_under_started_executions_fails_one_and_runs_the_rest_on_the_restarted_stub(loaded):
    pool, instance = loaded()
    first_pid = instance._stub.pid

    async def main() -> list[InferenceResponse | TritiumError]:
        started = [_started(pool, request(v)) for v in (1, 4, 8, 9)]
        return [(await completion)[0] for completion in started]

    before, crashed, *behind = asyncio.run(main())
    assert outputs(before)["Y"].tolist() == [[10]]
    assert isinstance(crashed, TritiumError) and "exited unexpectedly" in crashed.message
    assert [outputs(r)["Y"].tolist() for r in behind] == [[[80]], [[90]]]  # retried on the new stub
    assert instance._stub.pid != first_pid and pool.free_count() == 64


def test_a_hung_started_execution_times_out_and_frees_its_slot(loaded):
    pool, _ = loaded(TRITIUM_EXECUTE_TIMEOUT_SECONDS="1")

    async def main() -> list[InferenceResponse | TritiumError]:
        started = [_started(pool, request(5)), _started(pool, request(3))]
        return [(await completion)[0] for completion in started]

    hung, behind = asyncio.run(main())
    assert isinstance(hung, TritiumError) and "execute-timeout-seconds" in hung.message
    assert outputs(behind)["Y"].tolist() == [[30]]
    assert pool.free_count() == 64


SLOW_MODEL = '''
import time
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        time.sleep(0.05)
        return [pb_utils.InferenceResponse([
            pb_utils.Tensor("Y", pb_utils.get_input_tensor_by_name(r, "X").as_numpy()),
            pb_utils.Tensor("N", pb_utils.get_input_tensor_by_name(r, "X").as_numpy()[:, :1]),
        ]) for r in requests]
'''


def test_time_waiting_in_the_stubs_ring_counts_as_queue_time(model_from_source, load):
    """Four 50 ms executions sent at once: the stub runs them one after another, and each one's wait behind
    the others is queue time (Triton's split), not compute time."""
    config, instance = load(*model_from_source("slow", SLOW_MODEL, CONFIG))
    pool = InstancePool.from_config(config, [instance], model_version=1)

    async def main() -> None:
        requests = [request(v) for v in range(10, 14)]
        for req in requests:
            req.arrival_ns = time.monotonic_ns()
        started = [pool.try_start_now([req]) for req in requests]
        await asyncio.gather(*started)  # type: ignore[arg-type]

    asyncio.run(main())
    stats = pool.statistics.as_dict()["inference_stats"]
    assert stats["success"]["count"] == 4
    assert 0.18e9 < stats["compute_infer"]["ns"] < 0.45e9  # about 4 x 50 ms (it was 50 + 100 + 150 + 200)
    assert stats["queue"]["ns"] > 0.25e9  # about 0 + 50 + 100 + 150 ms
