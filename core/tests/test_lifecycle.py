"""Model lifecycle through the in-process server: versions, control modes, reloads, failures, shutdown."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tritium
import tritium.testing.fakes as fakes
from tritium import DataType, InferenceRequest, StatusCode, Tensor, TritiumError
from tritium.testing.fakes import identity_config, write_identity_model, write_model


def fp32_request(model: str, values: list[float], version: int = -1, batched: bool = True) -> InferenceRequest:
    array = np.array([values] if batched else values, dtype=np.float32)
    return InferenceRequest(
        model_name=model, model_version=version, inputs={"INPUT0": Tensor("INPUT0", DataType.FP32, array)}
    )


def states(server: tritium.Server) -> dict[tuple[str, str], tuple[str, str]]:
    return {
        (e["name"], e.get("version", "")): (e.get("state", ""), e.get("reason", ""))
        for e in server.service.repository_index()
    }


def write_versions(repo: Path, name: str, versions: list[int], policy: str = "") -> None:
    config = identity_config(name)
    if policy:
        from google.protobuf import text_format

        text_format.Parse(policy, config.version_policy)
    for version in versions:
        write_model(repo, config, version=version, files={fakes.IDENTITY_MODEL_FILE: b""})


@pytest.mark.parametrize(
    ("policy", "served"),
    [
        ("", ["3"]),
        ("latest { num_versions: 2 }", ["2", "3"]),
        ("all { }", ["1", "2", "3"]),
        ("specific { versions: [1, 3] }", ["1", "3"]),
    ],
)
async def test_version_policies(repo: Path, make_server: Any, policy: str, served: list[str]) -> None:
    write_versions(repo, "m", [1, 2, 3], policy)
    server = await make_server(repo)
    assert server.service.model_metadata("m")["versions"] == served
    for version in ("1", "2", "3"):
        assert server.service.model_ready("m", version) is (version in served)
    response = await server.service.infer(fp32_request("m", [1.0, 2.0]))
    assert response.model_version == served[-1]
    if "1" not in served:
        with pytest.raises(TritiumError) as info:
            await server.service.infer(fp32_request("m", [1.0], version=1))
        assert info.value.code in (StatusCode.NOT_FOUND, StatusCode.UNAVAILABLE)


async def test_version_folders_that_are_not_numbers_are_ignored(repo: Path, make_server: Any) -> None:
    write_versions(repo, "m", [7])
    (repo / "m" / "07").mkdir()
    (repo / "m" / "latest").mkdir()
    server = await make_server(repo)
    assert server.service.model_metadata("m")["versions"] == ["7"]


async def test_mode_none_refuses_load_and_unload(repo: Path, make_server: Any) -> None:
    write_identity_model(repo, "a")
    server = await make_server(repo)
    for call in (server.service.load_model("a"), server.service.unload_model("a")):
        with pytest.raises(TritiumError, match="explicit model load / unload is not allowed"):
            await call


async def test_explicit_mode_loads_only_what_is_asked(repo: Path, make_server: Any) -> None:
    write_identity_model(repo, "a")
    write_identity_model(repo, "b")
    server = await make_server(repo, model_control_mode="explicit", load_models=("a",))
    assert server.service.model_ready("a") and not server.service.model_ready("b")
    assert states(server)[("b", "")] == ("", "")
    await server.service.load_model("b")
    assert server.service.model_ready("b")
    await server.service.unload_model("a")
    assert states(server)[("a", "1")] == ("UNAVAILABLE", "unloaded")
    assert server.service.server_ready()  # an unloaded model does not count against readiness
    with pytest.raises(TritiumError, match="Request for unknown model: 'a' has no available versions"):
        await server.service.infer(fp32_request("a", [1.0]))
    with pytest.raises(TritiumError, match="failed to load 'zzz'"):
        await server.service.load_model("zzz")


async def test_explicit_star_loads_everything(repo: Path, make_server: Any) -> None:
    write_identity_model(repo, "a")
    write_identity_model(repo, "b")
    server = await make_server(repo, model_control_mode="explicit", load_models=("*",))
    assert server.service.model_ready("a") and server.service.model_ready("b")


async def test_load_with_config_and_file_overrides(repo: Path, make_server: Any) -> None:
    server = await make_server(repo, model_control_mode="explicit")
    from tritium.config import model_config_to_json

    config = identity_config("fresh", max_batch_size=0, dims=(3,))
    import json

    await server.service.load_model(
        "fresh", config=json.dumps(model_config_to_json(config)), files={"1/model.identity": b""}
    )
    response = await server.service.infer(fp32_request("fresh", [1.0, 2.0, 3.0], batched=False))
    np.testing.assert_array_equal(response.outputs[0].data, [1.0, 2.0, 3.0])


async def test_poll_mode_adds_reloads_and_removes(repo: Path, make_server: Any) -> None:
    write_identity_model(repo, "a")
    server = await make_server(repo, model_control_mode="poll", repository_poll_secs=0.2)
    write_identity_model(repo, "b")
    await wait_for(lambda: server.service.model_ready("b"))
    write_identity_model(repo, "a", version=2)
    await wait_for(lambda: server.service.model_metadata("a")["versions"] == ["2"])
    shutil.rmtree(repo / "b")
    await wait_for(lambda: not server.service.model_ready("b"))


async def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            if condition():
                return
        except TritiumError:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_broken_model_is_unavailable_and_harms_nothing_else(repo: Path, make_server: Any) -> None:
    write_identity_model(repo, "good")
    broken = repo / "broken"
    (broken / "1").mkdir(parents=True)
    (broken / "config.pbtxt").write_text('backend: "identity"\nmax_batch_size: -3\n')
    server = await make_server(repo)
    assert server.service.model_ready("good")
    state, reason = states(server)[("broken", "")]
    assert state == "UNAVAILABLE" and "config.pbtxt" in reason
    assert not server.service.server_ready()
    response = await server.service.infer(fp32_request("good", [5.0]))
    assert response.outputs[0].data.tolist() == [[5.0]]


async def test_non_strict_readiness_ignores_broken_models(repo: Path, make_server: Any) -> None:
    write_identity_model(repo, "good")
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "config.pbtxt").write_text("this is not a config")
    server = await make_server(repo, strict_readiness=False)
    assert server.service.server_ready()


async def test_a_name_in_two_repositories_loads_once_it_is_in_one(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for directory in (first, second):
        directory.mkdir()
        write_identity_model(directory, "twin")
    write_identity_model(first, "single")
    server = tritium.Server(
        tritium.ServerOptions(
            model_repositories=(str(first), str(second)), model_control_mode="explicit", exit_on_error=False
        ),
        plugins=[("fakes", fakes)],
    )
    await server.start()
    try:
        with pytest.raises(TritiumError, match="model 'twin' appears in multiple repositories") as info:
            await server.service.load_model("twin")
        assert info.value.code == StatusCode.INVALID_ARG
        assert str(first) in info.value.message and str(second) in info.value.message
        await server.service.load_model("single")  # the ambiguity is the twin's alone
        shutil.rmtree(second / "twin")
        await server.service.load_model("twin")
        assert server.service.model_ready("twin")
        assert states(server)[("twin", "1")] == ("READY", "")
    finally:
        await server.stop(timeout=5)


async def test_exit_on_error_refuses_to_start(repo: Path) -> None:
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "config.pbtxt").write_text("nonsense {")
    server = tritium.Server(
        tritium.ServerOptions(model_repositories=(str(repo),), exit_on_error=True), plugins=[("fakes", fakes)]
    )
    with pytest.raises(tritium.StartupError, match="broken"):
        await server.start()


async def test_reload_under_load_fails_no_request(repo: Path, make_server: Any) -> None:
    write_identity_model(repo, "m", execute_delay_ms=2, instance_count=2)
    server = await make_server(repo, model_control_mode="explicit", load_models=("m",))
    failures: list[BaseException] = []
    done = 0
    stop = asyncio.Event()

    async def client() -> None:
        nonlocal done
        while not stop.is_set():
            try:
                await server.service.infer(fp32_request("m", [1.0]))
                done += 1
            except Exception as exc:
                failures.append(exc)

    clients = [asyncio.create_task(client()) for _ in range(8)]
    for _ in range(5):
        await server.service.load_model("m")
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*clients)
    assert failures == [] and done > 20


async def test_unload_waits_for_requests_in_flight(repo: Path, make_server: Any) -> None:
    write_identity_model(repo, "slow", execute_delay_ms=300)
    server = await make_server(repo, model_control_mode="explicit", load_models=("slow",))
    request = asyncio.create_task(server.service.infer(fp32_request("slow", [3.0])))
    await asyncio.sleep(0.05)
    await server.service.unload_model("slow")
    assert request.done()
    assert (await request).outputs[0].data.tolist() == [[3.0]]


async def test_soft_placement_puts_gpu_groups_on_the_cpu(repo: Path, make_server: Any) -> None:
    config = identity_config("gpu_model")
    config.instance_group[0].kind = config.instance_group[0].KIND_GPU
    config.instance_group[0].count = 2
    write_model(repo, config, files={fakes.IDENTITY_MODEL_FILE: b""})
    server = await make_server(repo)
    if server._models.gpu_count:
        pytest.skip("this machine has a GPU")
    assert server.service.model_ready("gpu_model")
    runtime = server._models.runtime("gpu_model")
    assert runtime.pool.size == 2


async def test_hard_placement_makes_missing_gpu_a_load_error(repo: Path, make_server: Any) -> None:
    config = identity_config("gpu_model")
    config.instance_group[0].kind = config.instance_group[0].KIND_GPU
    write_model(repo, config, files={fakes.IDENTITY_MODEL_FILE: b""})
    server = await make_server(repo, allow_soft_placement=False)
    if server._models.gpu_count:
        pytest.skip("this machine has a GPU")
    index = states(server)
    state, reason = index.get(("gpu_model", "1")) or index[("gpu_model", "")]
    assert state == "UNAVAILABLE" and "KIND_GPU" in reason


async def test_shutdown_finishes_requests_in_flight(repo: Path, make_server: Any) -> None:
    write_identity_model(repo, "slow", execute_delay_ms=300)
    server = await make_server(repo)
    request = asyncio.create_task(server.service.infer(fp32_request("slow", [4.0])))
    await asyncio.sleep(0.05)
    assert await server.stop(timeout=5) is True
    assert (await request).outputs[0].data.tolist() == [[4.0]]
    with pytest.raises(TritiumError) as info:
        await server.service.infer(fp32_request("slow", [4.0]))
    assert info.value.code is StatusCode.UNAVAILABLE
    assert not server.service.server_live()


async def test_decoupled_stream(repo: Path, make_server: Any) -> None:
    write_identity_model(repo, "dec", decoupled=True, decoupled_repeat=3)
    server = await make_server(repo)
    responses = [r async for r in server.service.infer_stream(fp32_request("dec", [1.0, 2.0]))]
    assert len(responses) == 3 and not any(r.final for r in responses)
    asking = fp32_request("dec", [1.0, 2.0])
    asking.parameters["triton_enable_empty_final_response"] = True
    responses = [r async for r in server.service.infer_stream(asking)]
    assert len(responses) == 4 and responses[-1].final and not responses[-1].outputs
    with pytest.raises(TritiumError) as info:
        await server.service.infer(fp32_request("dec", [1.0]))
    assert info.value.code is StatusCode.UNSUPPORTED


async def test_statistics_count_like_triton(repo: Path, make_server: Any) -> None:
    write_identity_model(repo, "m")
    server = await make_server(repo)
    await server.service.infer(fp32_request("m", [1.0]))
    batched = fp32_request("m", [1.0])
    batched.inputs["INPUT0"] = tritium.Tensor("INPUT0", tritium.DataType.FP32, np.ones((4, 1), np.float32))
    await server.service.infer(batched)
    (stats,) = server.service.statistics("m")["model_stats"]
    assert stats["inference_count"] == 5 and stats["execution_count"] == 2
    assert stats["inference_stats"]["success"]["count"] == 2
    assert sorted(b["batch_size"] for b in stats["batch_stats"]) == [1, 4]
    assert server.service.statistics()["model_stats"][0]["name"] == "m"
    with pytest.raises(TritiumError):
        server.service.statistics("nope")


async def test_metadata_and_config(repo: Path, make_server: Any) -> None:
    write_identity_model(repo, "m", dims=(4,), max_batch_size=8)
    server = await make_server(repo)
    meta = server.service.model_metadata("m")
    assert meta == {
        "name": "m",
        "versions": ["1"],
        "platform": "identity",
        "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "OUTPUT0", "datatype": "FP32", "shape": [-1, 4]}],
    }
    assert server.service.model_config("m").max_batch_size == 8
    with pytest.raises(TritiumError, match="Request for unknown model: 'nope' is not found"):
        server.service.model_metadata("nope")
    ext = server.service.server_metadata()["extensions"]
    assert "model_repository" in ext and "statistics" in ext
    # Advertised only when they work: no request tracing, no dependents to unload.
    assert "trace" not in ext and "model_repository(unload_dependents)" not in ext


async def test_infer_nowait_answers_fast_models_on_the_spot(repo: Path, make_server: Any) -> None:
    write_identity_model(repo, "m")
    server = await make_server(repo, inline_execution_us=20_000)  # fast even on a loaded test machine
    service = server.service
    for _ in range(16):  # measured on the worker threads first: until then an awaitable
        pending = service.infer_nowait(fp32_request("m", [1.0]))
        assert not isinstance(pending, tritium.InferenceResponse)
        await pending  # type: ignore[misc]
    answer = service.infer_nowait(fp32_request("m", [2.0]))
    assert isinstance(answer, tritium.InferenceResponse) and answer.outputs[0].data.tolist() == [[2.0]]
    assert service.in_flight == 0
    with pytest.raises(TritiumError) as info:
        service.infer_nowait(fp32_request("nope", [1.0]))
    assert info.value.code is StatusCode.NOT_FOUND
    (stats,) = service.statistics("m")["model_stats"]
    assert stats["execution_count"] == 17 and stats["inference_stats"]["success"]["count"] == 17
