"""The model client (``SchedulerContext.models``, ``ModelSource.models``): nested requests to loaded models,
through a real server, with the cycle and depth guard.

The ``router`` backend below forwards each request along the route its ``route`` parameter names
(``"b,c"``: to b, which forwards to c, whose answer comes back), calling ``ModelClient.infer_blocking`` (or
``infer_stream_blocking`` with parameter ``stream``) inside ``ModelInstance.execute``, as a BLS model does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tritium
import tritium.testing.fakes as fakes
from tritium import (
    Backend,
    BackendSpec,
    Batch,
    DataType,
    InferenceRequest,
    InferenceResponse,
    InstancePlacement,
    ModelClient,
    ModelInstance,
    ModelSource,
    Scheduler,
    SchedulerContext,
    StatusCode,
    Tensor,
    TritiumError,
)
from tritium.config import ModelConfig
from tritium.testing._modelconfig import new_config

ROUTERS = ("r0", "r1", "r2", "r3", "r4")
MAX_DEPTH = 4
TIMEOUT_S = 20.0


class RouterInstance(ModelInstance):
    """Answers its input when the route is empty; otherwise asks the route's next model, passing the rest on."""

    def __init__(self, models: ModelClient | None) -> None:
        assert models is not None, "a loading model gets a model client"
        self.models = models

    def execute(self, batch: Batch) -> Mapping[str, np.ndarray[Any, Any]]:
        request = batch.requests[0]
        data = request.inputs["INPUT0"].data
        route = [hop for hop in str(request.parameters.get("route", "")).split(",") if hop]
        if not route:
            return {"OUTPUT0": data}
        nested = InferenceRequest(
            model_name=route[0],
            inputs={"INPUT0": Tensor("INPUT0", DataType.FP32, data)},
            parameters={"route": ",".join(route[1:]), "stream": bool(request.parameters.get("stream", False))},
            id=request.id,
        )
        if request.parameters.get("stream"):
            responses = list(self.models.infer_stream_blocking(nested, timeout_s=TIMEOUT_S))
            response = responses[-1]
        else:
            response = self.models.infer_blocking(nested, timeout_s=TIMEOUT_S)
        return {"OUTPUT0": response.outputs[0].data}


class RouterBackend(Backend):
    def create_instance(self, source: ModelSource, config: ModelConfig, placement: InstancePlacement) -> ModelInstance:
        return RouterInstance(source.models)


class RouterPlugin:
    @tritium.hookimpl
    def tritium_register_backends(self) -> list[BackendSpec]:
        return [BackendSpec("router", lambda options: RouterBackend(), "model.router")]


def router_config(name: str) -> ModelConfig:
    return new_config(
        name, backend="router", max_batch_size=0,
        inputs=[("INPUT0", DataType.FP32, (-1,))], outputs=[("OUTPUT0", DataType.FP32, (-1,))],
    )


def routed(entry: str, route: list[str], values: list[float], *, stream: bool = False) -> InferenceRequest:
    return InferenceRequest(
        model_name=entry,
        inputs={"INPUT0": Tensor("INPUT0", DataType.FP32, np.array(values, dtype=np.float32))},
        parameters={"route": ",".join(route), "stream": stream},
        id="routed",
    )


def write_repository(repo: Path) -> None:
    for name in ROUTERS:
        fakes.write_model(repo, router_config(name), files={"model.router": b""})
    fakes.write_identity_model(repo, "leaf", max_batch_size=0)
    fakes.write_identity_model(repo, "stream_leaf", max_batch_size=0, decoupled=True, decoupled_repeat=3)


class ServerThread:
    """A server on an event loop of its own thread, so synchronous (hypothesis) tests can drive it."""

    def __init__(self, repo: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        options = tritium.ServerOptions(model_repositories=(str(repo),), exit_on_error=False)
        self.server = tritium.Server(options, plugins=[("fakes", fakes), ("router", RouterPlugin())])
        self.call(self.server.start())
        self.server.service.max_call_depth = MAX_DEPTH

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(TIMEOUT_S * 2)

    def close(self) -> None:
        self.call(self.server.stop(timeout=5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    repo = tmp_path_factory.mktemp("models")
    write_repository(repo)
    running = ServerThread(repo)
    yield running
    running.close()


def expected_failure(path: list[str]) -> str | None:
    """Which guard stops ``path`` (models in call order): "cycle", "depth", or None when it runs."""
    for i in range(1, len(path)):
        chain, target = path[:i], path[i]
        if target in chain:
            return "cycle"
        if len(chain) >= MAX_DEPTH:
            return "depth"
    return None


# ------------------------------------------------------------------------------------------ property
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    entry=st.sampled_from(ROUTERS),
    route=st.lists(st.sampled_from(ROUTERS), max_size=6),
    leaf=st.booleans(),
    stream=st.booleans(),
)
def test_nested_requests_run_unless_they_cycle_or_nest_too_deep(
    served: ServerThread, entry: str, route: list[str], leaf: bool, stream: bool
) -> None:
    if leaf:
        route = [*route, "leaf"]
    values = [float(len(route)), 2.5]
    path = [entry, *route]
    failure = expected_failure(path)
    if failure is None:
        response = served.call(served.server.infer(routed(entry, route, values, stream=stream)))
        np.testing.assert_array_equal(response.outputs[0].data, np.array(values, dtype=np.float32))
        return
    with pytest.raises(TritiumError) as info:
        served.call(served.server.infer(routed(entry, route, values, stream=stream)))
    assert info.value.code is StatusCode.INVALID_ARG, info.value
    if failure == "cycle":
        assert "a model cannot call itself or a model that called it" in info.value.message
    else:
        assert f"requests may nest at most {MAX_DEPTH} models deep" in info.value.message


# ------------------------------------------------------------------------------------- deterministic
def success_count(served: ServerThread, name: str) -> int:
    stats = served.server.service.statistics(name)["model_stats"][0]
    return int(stats["inference_stats"]["success"]["count"])


def test_nested_requests_count_in_the_called_models_statistics(served: ServerThread) -> None:
    before = {name: success_count(served, name) for name in ("r0", "r1", "leaf")}
    served.call(served.server.infer(routed("r0", ["r1", "leaf"], [1.0])))
    after = {name: success_count(served, name) for name in ("r0", "r1", "leaf")}
    assert {name: after[name] - before[name] for name in after} == {"r0": 1, "r1": 1, "leaf": 1}


def test_self_call_names_the_chain(served: ServerThread) -> None:
    with pytest.raises(TritiumError) as info:
        served.call(served.server.infer(routed("r2", ["r3", "r2"], [1.0])))
    assert info.value.code is StatusCode.INVALID_ARG
    assert "[request id: routed] model 'r3' cannot submit a request to model 'r2'" in info.value.message
    assert "(r2 -> r3 -> r2)" in info.value.message


def test_nested_request_is_validated_like_a_client_request(served: ServerThread) -> None:
    with pytest.raises(TritiumError) as info:
        served.call(served.server.infer(routed("r0", ["missing"], [1.0])))
    assert info.value.code is StatusCode.NOT_FOUND
    assert "Request for unknown model: 'missing' is not found" in info.value.message


def test_streaming_from_an_instance_gets_every_response(served: ServerThread) -> None:
    client = served.call(_client(served, "r0"))

    def stream() -> list[InferenceResponse]:
        request = routed("stream_leaf", [], [4.0, 5.0])
        return list(client.infer_stream_blocking(request, timeout_s=TIMEOUT_S))

    responses = stream()  # this test's thread is not the event loop's: blocking is allowed here
    assert len(responses) == 3
    for response in responses:
        np.testing.assert_array_equal(response.outputs[0].data, np.array([4.0, 5.0], dtype=np.float32))


def test_a_decoupled_model_needs_the_stream(served: ServerThread) -> None:
    client = served.call(_client(served, "r0"))
    with pytest.raises(TritiumError) as info:
        client.infer_blocking(routed("stream_leaf", [], [1.0]), timeout_s=TIMEOUT_S)
    assert info.value.code is StatusCode.UNSUPPORTED


def test_blocking_call_on_the_event_loop_fails_instead_of_hanging(served: ServerThread) -> None:
    async def on_loop() -> None:
        client = served.server.service.model_client("r0")
        client.infer_blocking(routed("leaf", [], [1.0]), timeout_s=1)

    with pytest.raises(TritiumError, match="called on the event loop thread"):
        served.call(on_loop())


def test_is_ready(served: ServerThread) -> None:
    client = served.call(_client(served, "r0"))
    assert client.is_ready("leaf") and client.is_ready("leaf", "1")
    assert not client.is_ready("leaf", "2") and not client.is_ready("missing")


async def _client(served: ServerThread, caller: str) -> ModelClient:
    return served.server.service.model_client(caller)


# ------------------------------------------------------------------------------------ scheduler side
class ForwardingScheduler(Scheduler):
    """Sends every request of its model to the model named by the ``forward_to`` option (an ensemble's
    simplest form), through ``SchedulerContext.models`` on the event loop."""

    def __init__(self, context: SchedulerContext) -> None:
        self.context = context

    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        target = str(self.context.options["forward_to"])
        nested = InferenceRequest(model_name=target, inputs=request.inputs, id=request.id)
        answer = await self.context.models.infer(nested)
        return InferenceResponse(
            model_name=self.context.model_name, model_version=str(self.context.model_version),
            id=request.id, outputs=answer.outputs,
        )


async def test_scheduler_reaches_other_models_through_its_context(repo: Path, make_server: Any) -> None:
    fakes.write_identity_model(repo, "leaf", max_batch_size=0)
    server = await make_server(repo)
    config = fakes.identity_config("front", max_batch_size=0)

    def context(target: str) -> SchedulerContext:
        pool = tritium.InstancePool.from_config(config, [fakes.IdentityInstance(config)], model_version=1)
        return SchedulerContext(
            model_name="front", model_version=1, config=config, pool=pool, clock_ns=lambda: 0,
            emit=lambda event: None, options={"forward_to": target}, models=server.service.model_client("front"),
        )

    request = InferenceRequest(
        model_name="front", inputs={"INPUT0": Tensor("INPUT0", DataType.FP32, np.array([3.0], np.float32))}
    )
    response = await ForwardingScheduler(context("leaf")).infer(request)
    np.testing.assert_array_equal(response.outputs[0].data, [3.0])
    with pytest.raises(TritiumError, match="a model cannot call itself"):
        await ForwardingScheduler(context("front")).infer(request)


async def test_outside_a_server_no_model_is_reachable() -> None:
    config = fakes.identity_config("alone", max_batch_size=0)
    pool = tritium.InstancePool.from_config(config, [fakes.IdentityInstance(config)], model_version=1)
    context = SchedulerContext(
        model_name="alone", model_version=1, config=config, pool=pool, clock_ns=lambda: 0, emit=lambda e: None
    )
    request = InferenceRequest(model_name="other", inputs={})
    with pytest.raises(TritiumError) as info:
        await context.models.infer(request)
    assert info.value.code is StatusCode.UNAVAILABLE
    with pytest.raises(TritiumError):
        context.models.infer_blocking(request)
    assert not context.models.is_ready("other")
    pool.close()
