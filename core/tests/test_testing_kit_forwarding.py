"""A toy scheduler written only against ``tritium.abc`` (and the public request types): it serves a one-step
ensemble by forwarding each request to the step's model through ``SchedulerContext.models``, with no instances of
its own. It loads and serves in a real server, which is what an ensemble scheduler or BLS plugin needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import text_format

import tritium
import tritium.testing.fakes as fakes
from tritium import DataType, InferenceRequest, InferenceResponse, SchedulerSpec, StatusCode, Tensor, TritiumError
from tritium.abc import Scheduler, SchedulerContext
from tritium.config import ModelConfig


class ForwardingScheduler(Scheduler):
    """Each request goes to the model of the ensemble's first step, its tensors renamed by the step's maps."""

    def __init__(self, context: SchedulerContext) -> None:
        self.context = context
        step = context.config.ensemble_scheduling.step[0]
        self.target = step.model_name
        self.input_map = dict(step.input_map)  # the step model's input name -> the ensemble's tensor
        self.output_map = dict(step.output_map)  # the step model's output name -> the ensemble's tensor

    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        inputs = {
            inner: Tensor(inner, request.inputs[outer].datatype, request.inputs[outer].data)
            for inner, outer in self.input_map.items()
        }
        nested = InferenceRequest(model_name=self.target, inputs=inputs, id=request.id)
        try:
            answer = await self.context.models.infer(nested)
        except TritiumError as exc:
            self.context.pool.record_completion(request, exc)
            raise
        self.context.pool.record_completion(request)
        outputs = [
            Tensor(self.output_map[t.name], t.datatype, t.data) for t in answer.outputs if t.name in self.output_map
        ]
        return InferenceResponse(
            model_name=self.context.model_name, model_version=str(self.context.model_version), id=request.id,
            outputs=outputs,
        )


class ForwardingPlugin:
    @tritium.hookimpl
    def tritium_register_schedulers(self) -> list[SchedulerSpec]:
        return [
            SchedulerSpec("forwarding", "ensemble_scheduling", ForwardingScheduler, needs_instances=False),
        ]


ENSEMBLE = """
name: "front"
platform: "ensemble"
max_batch_size: 8
input { name: "IN" data_type: TYPE_FP32 dims: [ -1 ] }
output { name: "OUT" data_type: TYPE_FP32 dims: [ -1 ] }
ensemble_scheduling {
  step {
    model_name: "leaf"
    model_version: -1
    input_map { key: "INPUT0" value: "IN" }
    output_map { key: "OUTPUT0" value: "OUT" }
  }
}
"""


def write_ensemble(repo: Path) -> None:
    fakes.write_identity_model(repo, "leaf")
    config = text_format.Parse(ENSEMBLE, ModelConfig())
    fakes.write_model(repo, config)


async def start(repo: Path, *plugins: tuple[str, Any], disabled: tuple[str, ...] = ()) -> tritium.Server:
    server = tritium.Server(
        tritium.ServerOptions(model_repositories=(str(repo),), exit_on_error=False, disabled_plugins=disabled),
        plugins=[("fakes", fakes), *plugins],
    )
    await server.start()
    return server


def request(values: list[float]) -> InferenceRequest:
    data = np.array([values], dtype=np.float32)
    return InferenceRequest(model_name="front", inputs={"IN": Tensor("IN", DataType.FP32, data)}, id="fwd")


async def test_forwarding_scheduler_loads_and_serves(repo: Path) -> None:
    write_ensemble(repo)
    server = await start(repo, ("forwarding", ForwardingPlugin()))
    try:
        assert server.service.model_ready("front")
        response = await server.service.infer(request([1.5, 2.5]))
        assert (response.model_name, response.id, [t.name for t in response.outputs]) == ("front", "fwd", ["OUT"])
        np.testing.assert_array_equal(response.outputs[0].data, [[1.5, 2.5]])
        # Streaming APIs reach the scheduler too (the default infer_stream: one response).
        streamed = [r async for r in server.service.infer_stream(request([3.0]))]
        assert len(streamed) == 1 and streamed[0].outputs[0].data.tolist() == [[3.0]]
        entries = server.service.statistics()["model_stats"]
        stats = {s["name"]: s["inference_stats"]["success"]["count"] for s in entries}
        assert stats == {"front": 2, "leaf": 2}
        with pytest.raises(TritiumError) as info:  # validated like a client request, before forwarding
            await server.service.infer(InferenceRequest(model_name="front", inputs={}))
        assert info.value.code is StatusCode.INVALID_ARG
    finally:
        await server.stop(timeout=5)


async def test_without_a_scheduler_for_its_section_an_ensemble_does_not_load(repo: Path) -> None:
    write_ensemble(repo)
    server = await start(repo)
    try:
        assert not server.service.model_ready("front")
        (entry,) = [e for e in server.service.repository_index() if e["name"] == "front"]
        assert "uses 'ensemble_scheduling', but no installed scheduler plugin serves it" in entry["reason"]
    finally:
        await server.stop(timeout=5)


class BatchOnly(Scheduler):
    def __init__(self, context: SchedulerContext) -> None:
        self.context = context

    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        raise AssertionError("never loaded")


class BatchOnlyPlugin:
    @tritium.hookimpl
    def tritium_register_schedulers(self) -> list[SchedulerSpec]:
        return [SchedulerSpec("batch_only", "dynamic_batching", BatchOnly)]


async def test_a_decoupled_model_needs_a_scheduler_that_streams(repo: Path) -> None:
    fakes.write_identity_model(repo, "d", decoupled=True, dynamic_batching=True)
    server = await start(repo, ("batch_only", BatchOnlyPlugin()), disabled=("scheduler_dynamic",))
    try:
        assert not server.service.model_ready("d")
        (entry,) = [e for e in server.service.repository_index() if e["name"] == "d"]
        assert "scheduler 'batch_only'" in entry["reason"] and "does not serve decoupled models" in entry["reason"]
    finally:
        await server.stop(timeout=5)
