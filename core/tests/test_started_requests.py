"""Requests the data plane starts at once on a free instance that awaits its executions: ``infer_nowait``
returns a :class:`tritium.Completion` (no task), the request counts as in flight until it is settled, and
whoever listens to it hears of the end within the loop callback that ended the execution."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import text_format

import tritium
from tritium import (
    Completion,
    DataType,
    InferenceRequest,
    InferenceResponse,
    InstancePool,
    SchedulerContext,
    StatusCode,
    Tensor,
    TritiumError,
)
from tritium._runtime.default_scheduler import DefaultScheduler
from tritium.proto.model_config_pb2 import ModelConfig
from tritium.testing.fakes import write_identity_model


def fp32_request(model: str, value: float) -> InferenceRequest:
    array = np.array([[value]], dtype=np.float32)
    return InferenceRequest(model_name=model, inputs={"INPUT0": Tensor("INPUT0", DataType.FP32, array)})


async def test_infer_nowait_starts_awaited_models_and_answers_through_a_completion(
    repo: Path, make_server: Any
) -> None:
    write_identity_model(repo, "m", awaited_execution=True, execute_delay_ms=20)
    server = await make_server(repo)
    service = server.service
    pending = service.infer_nowait(fp32_request("m", 4.0))
    assert type(pending) is Completion and not pending.done()
    assert service.in_flight == 1
    heard: list[tuple[int, list[list[float]]]] = []
    pending.when_settled(lambda c: heard.append((service.in_flight, c.result().outputs[0].data.tolist())))
    response = await pending
    assert isinstance(response, InferenceResponse)
    assert heard == [(0, [[4.0]])]  # the request had left the data plane before its listener heard of it
    (stats,) = service.statistics("m")["model_stats"]
    assert stats["execution_count"] == 1 and stats["inference_stats"]["success"]["count"] == 1


async def test_requests_beyond_the_free_instances_take_the_awaited_path(repo: Path, make_server: Any) -> None:
    write_identity_model(repo, "m", awaited_execution=True, execute_delay_ms=30)
    server = await make_server(repo)
    service = server.service
    pendings = [service.infer_nowait(fp32_request("m", float(v))) for v in range(6)]
    assert [type(p) is Completion for p in pendings] == [True] * 4 + [False] * 2  # pipeline depth 4
    responses = await asyncio.gather(*pendings)  # type: ignore[arg-type]
    assert [r.outputs[0].data.tolist() for r in responses] == [[[float(v)]] for v in range(6)]
    assert service.in_flight == 0


async def test_unload_and_shutdown_wait_for_started_requests(repo: Path, make_server: Any) -> None:
    write_identity_model(repo, "slow", awaited_execution=True, execute_delay_ms=300)
    server = await make_server(repo, model_control_mode="explicit", load_models=("slow",))
    pending = server.service.infer_nowait(fp32_request("slow", 3.0))
    assert type(pending) is Completion
    await asyncio.sleep(0.05)
    await server.service.unload_model("slow")
    assert pending.done() and pending.result().outputs[0].data.tolist() == [[3.0]]

    await server.service.load_model("slow")
    pending = server.service.infer_nowait(fp32_request("slow", 5.0))
    started = time.monotonic()
    await server.stop(timeout=5)
    assert time.monotonic() - started >= 0.2  # the stop waited for it
    assert pending.done() and pending.result().outputs[0].data.tolist() == [[5.0]]


async def test_a_caller_that_gives_up_leaves_the_execution_counted(repo: Path, make_server: Any) -> None:
    write_identity_model(repo, "m", awaited_execution=True, execute_delay_ms=50)
    server = await make_server(repo)
    service = server.service
    pending = service.infer_nowait(fp32_request("m", 1.0))
    assert type(pending) is Completion
    pending.cancel()  # a frontend whose client went away
    assert service.in_flight == 0
    await asyncio.sleep(0.2)
    (stats,) = service.statistics("m")["model_stats"]
    assert stats["execution_count"] == 1
    answer = await service.infer(fp32_request("m", 2.0))  # the instance is free again
    assert answer.outputs[0].data.tolist() == [[2.0]]


CONFIG = """
name: "m"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1 ] } ]
"""


class Refusing(tritium.ModelInstance):
    """Fails every execution, after the event loop's next turn, with UNAVAILABLE."""

    pipeline_depth = 2

    def execute(self, batch: tritium.Batch) -> Any:
        raise TritiumError(StatusCode.UNAVAILABLE, "worker gone")

    def execute_async(self, batch: tritium.Batch) -> Completion[Any]:
        done: Completion[Any] = Completion()
        asyncio.get_running_loop().call_soon(done.set_exception, TritiumError(StatusCode.UNAVAILABLE, "worker gone"))
        return done


async def test_the_default_scheduler_raises_a_started_requests_error_from_its_completion() -> None:
    config = text_format.Parse(CONFIG, ModelConfig())
    pool = InstancePool.from_config(config, [Refusing()], model_version=1)
    context = SchedulerContext(model_name="m", model_version=1, config=config, pool=pool,
                               clock_ns=time.monotonic_ns, emit=lambda _event: None)
    scheduler = DefaultScheduler(context)
    started = scheduler.infer_now(fp32_request("m", 1.0))
    assert type(started) is Completion
    with pytest.raises(TritiumError) as info:
        await started
    assert info.value.code is StatusCode.UNAVAILABLE and "worker gone" in info.value.message
    with pytest.raises(TritiumError):  # infer() takes the same path, awaited
        await scheduler.infer(fp32_request("m", 2.0))
    assert pool.free_count() == 2
    pool.close()
