"""End to end for the pytorch backend: the PyTorch example models (examples/torch_models.py: TorchScript
``simple_torchscript`` and AOTInductor ``simple_aoti``) plus test models (identity per datatype, strings,
errors, a GPU instance group), served in-process and by ``tritium serve`` to NVIDIA's ``tritonclient`` over
HTTP and gRPC. Expected answers come from the same modules run directly in PyTorch."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tritium import DataType, InferenceRequest, Server, ServerOptions, StatusCode, Tensor, TritiumError
from tritium.testing.builders import assert_same_array as assert_same
from tritium.testing.builders import wire_sample as sample

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[1]
TENSOR_TYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
                "FP64", "BF16"]
HAS_COMPILER = any(shutil.which(c) for c in ("c++", "g++", "clang++"))


def _load_builder() -> Any:
    spec = importlib.util.spec_from_file_location("torch_models", ROOT / "examples" / "torch_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("torch_models", module)
    spec.loader.exec_module(module)
    return module


BUILDER = _load_builder()


class Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


class Greeter(torch.nn.Module):
    """``List[str]`` in and out: each name becomes ``hello <name>``."""

    def forward(self, names: list[str]) -> list[str]:
        return ["hello " + n for n in names]


class Failing(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x < 0).any()):
            raise RuntimeError("negative input")
        return x * 2


class WrongType(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.int64)


def tensor_config(name: str, wire: str, dims: str, *, batch: int = 8, extra: str = "") -> str:
    config_type = "TYPE_STRING" if wire == "BYTES" else f"TYPE_{wire}"
    return f"""
name: "{name}"
platform: "pytorch_libtorch"
max_batch_size: {batch}
input [ {{ name: "INPUT__0" data_type: {config_type} dims: [ {dims} ] }} ]
output [ {{ name: "OUTPUT__0" data_type: {config_type} dims: [ {dims} ] }} ]
{extra}
"""


def write(repo: Path, name: str, module: Any, config: str) -> None:
    BUILDER.save_torchscript(module, repo / name / "1" / "model.pt")
    (repo / name / "config.pbtxt").write_text(config)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("torch-e2e") / "models"
    BUILDER.build_torch_examples(out)
    for wire in TENSOR_TYPES:
        name = f"torch_identity_{wire.lower()}"
        write(out, name, Identity(), tensor_config(name, wire, "-1"))
    write(out, "torch_greeter", Greeter(), tensor_config("torch_greeter", "BYTES", "-1", batch=0))
    write(out, "torch_failing", Failing(), tensor_config("torch_failing", "FP32", "2"))
    write(out, "torch_wrong_type", WrongType(), tensor_config("torch_wrong_type", "FP32", "2"))
    # KIND_GPU on a machine without CUDA: the kernel's soft placement decides where the instances go.
    write(out, "torch_gpu_group", Identity(), tensor_config(
        "torch_gpu_group", "FP32", "4", extra="instance_group [ { kind: KIND_GPU count: 2 } ]"))
    # default_model_filename names another file in the version folder
    BUILDER.save_torchscript(Identity(), out / "torch_custom_file" / "1" / "weights.pt")
    (out / "torch_custom_file" / "config.pbtxt").write_text(
        tensor_config("torch_custom_file", "INT16", "2") + 'default_model_filename: "weights.pt"\n'
    )
    # warmup samples run through the instance before the model is ready
    write(out, "torch_warmed", Identity(), tensor_config("torch_warmed", "FP32", "4", extra="""
        model_warmup [ { name: "zeros" batch_size: 2
          inputs { key: "INPUT__0" value { data_type: TYPE_FP32 dims: [ 4 ] zero_data: true } } } ]
    """))
    return out


def simple_inputs(dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(32).reshape(2, 16).astype(dtype), np.full((2, 16), 5).astype(dtype)


def reference_add_sub(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The example module run directly in PyTorch."""
    s, d = BUILDER.add_sub_module()(torch.from_numpy(a), torch.from_numpy(b))
    return s.numpy(), d.numpy()


# ------------------------------------------------------------------------------------------- in-process
def _infer(inprocess: Any, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    server, loop = inprocess
    tensors = {n: Tensor(n, DataType.BYTES if a.dtype == object else DataType.from_numpy(a.dtype), a)
               for n, a in inputs.items()}
    response = loop.run_until_complete(server.service.infer(InferenceRequest(model_name=model, inputs=tensors)))
    return {t.name: t.data for t in response.outputs}


def test_in_process_examples(inprocess: Any) -> None:
    a, b = simple_inputs(np.int32)
    out = _infer(inprocess, "simple_torchscript", {"INPUT__0": a, "INPUT__1": b})
    expected = reference_add_sub(a, b)
    assert_same(out["OUTPUT__0"], expected[0])
    assert_same(out["OUTPUT__1"], expected[1])
    if not HAS_COMPILER:
        pytest.skip("no C++ compiler: simple_aoti is not built")
    fa, fb = simple_inputs(np.float32)
    out = _infer(inprocess, "simple_aoti", {"ARGS[0]": fa, "ARGS[1]": fb})
    expected = reference_add_sub(fa, fb)
    assert_same(out["RESULT[0]"], expected[0])
    assert_same(out["RESULT[1]"], expected[1])


@pytest.mark.parametrize("wire", TENSOR_TYPES)
def test_in_process_identity_per_datatype(inprocess: Any, wire: str) -> None:
    x = sample(wire, (3, 5))
    assert_same(_infer(inprocess, f"torch_identity_{wire.lower()}", {"INPUT__0": x})["OUTPUT__0"], x)


def test_gpu_group_follows_the_kernels_placement(inprocess: Any) -> None:
    server, _ = inprocess
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: test_torch_gpu.py covers GPU instances")
    assert server.service.model_ready("torch_gpu_group")
    x = sample("FP32", (2, 4))
    assert_same(_infer(inprocess, "torch_gpu_group", {"INPUT__0": x})["OUTPUT__0"], x)


def test_default_model_filename_is_honoured(inprocess: Any) -> None:
    x = sample("INT16", (2, 2))
    assert_same(_infer(inprocess, "torch_custom_file", {"INPUT__0": x})["OUTPUT__0"], x)


def test_warmed_model_is_ready(inprocess: Any) -> None:
    server, _ = inprocess
    assert server.service.model_ready("torch_warmed")


def test_dynamic_batching_batches_concurrent_requests(inprocess: Any) -> None:
    server, loop = inprocess
    before = server.service.statistics("simple_torchscript")["model_stats"][0]
    a, b = simple_inputs(np.int32)

    async def many() -> list[Any]:
        requests = [
            server.service.infer(InferenceRequest(model_name="simple_torchscript", inputs={
                "INPUT__0": Tensor("INPUT__0", DataType.INT32, a[:1] + i),
                "INPUT__1": Tensor("INPUT__1", DataType.INT32, b[:1]),
            }))
            for i in range(64)
        ]
        return await asyncio.gather(*requests)

    responses = loop.run_until_complete(many())
    for i, response in enumerate(responses):
        outputs = {t.name: t.data for t in response.outputs}
        np.testing.assert_array_equal(outputs["OUTPUT__0"], a[:1] + i + b[:1])
    after = server.service.statistics("simple_torchscript")["model_stats"][0]
    inferences = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert inferences == 64
    assert executions < inferences  # several requests shared an execution


def test_config_without_tensors_fails_to_load_like_triton(tmp_path: Path) -> None:
    BUILDER.save_torchscript(Identity(), tmp_path / "models" / "bare" / "1" / "model.pt")

    async def start() -> tuple[bool, list[dict[str, Any]]]:
        server = Server(ServerOptions(model_repositories=(str(tmp_path / "models"),), exit_on_error=False))
        await server.start()
        try:
            return server.service.model_ready("bare"), server.service.repository_index()
        finally:
            await server.stop()

    ready, index = asyncio.run(start())
    assert ready is False
    (entry,) = [e for e in index if e["name"] == "bare"]
    assert entry["state"] == "UNAVAILABLE"
    assert "input" in entry["reason"]


# ---------------------------------------------------------------------------------------- the network
@pytest.fixture(scope="module")
def served(tritium_serve_factory: Any, repo: Path) -> Any:
    return tritium_serve_factory(f"--model-repository={repo}")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("wire", TENSOR_TYPES)
def test_identity_per_datatype_over_the_network(
    served: Any, identity_round_trip: Any, protocol: str, wire: str
) -> None:
    model = f"torch_identity_{wire.lower()}"
    identity_round_trip(served, protocol, model, wire, input_name="INPUT__0", output_name="OUTPUT__0")


def test_examples_over_http_and_grpc(served: Any) -> None:
    import tritonclient.grpc as grpc
    import tritonclient.http as http

    served.require("http")
    served.require("grpc")
    models = [("simple_torchscript", np.int32, "INT32", ("INPUT__0", "INPUT__1"), ("OUTPUT__0", "OUTPUT__1"))]
    if HAS_COMPILER:
        models.append(("simple_aoti", np.float32, "FP32", ("ARGS[0]", "ARGS[1]"), ("RESULT[0]", "RESULT[1]")))
    with http.InferenceServerClient(served.http_url) as hclient, \
            grpc.InferenceServerClient(served.grpc_address) as gclient:
        for model, dtype, wire, (in0, in1), (out0, out1) in models:
            a, b = simple_inputs(dtype)
            expected = reference_add_sub(a, b)
            for module, client in ((http, hclient), (grpc, gclient)):
                inputs = [module.InferInput(in0, [2, 16], wire), module.InferInput(in1, [2, 16], wire)]
                inputs[0].set_data_from_numpy(a)
                inputs[1].set_data_from_numpy(b)
                result = client.infer(model, inputs)
                assert_same(result.as_numpy(out0), expected[0])
                assert_same(result.as_numpy(out1), expected[1])
        config = hclient.get_model_config("simple_torchscript")
        metadata = hclient.get_model_metadata("simple_torchscript")
        assert config["backend"] == "pytorch" and config["platform"] == "pytorch_libtorch"
        assert metadata["platform"] == "pytorch_libtorch"
        assert [i["name"] for i in metadata["inputs"]] == ["INPUT__0", "INPUT__1"]
        if HAS_COMPILER:
            aoti = gclient.get_model_config("simple_aoti").config
            assert (aoti.backend, aoti.platform, aoti.default_model_filename) == ("pytorch", "torch_aoti", "model.pt2")


def test_strings_over_http_and_grpc(served: Any) -> None:
    import tritonclient.grpc as grpc
    import tritonclient.http as http

    served.require("http")
    served.require("grpc")
    names = np.array(["wörld".encode(), b"triton"], dtype=object)
    with http.InferenceServerClient(served.http_url) as client:
        tensor = http.InferInput("INPUT__0", [2], "BYTES")
        tensor.set_data_from_numpy(names, binary_data=True)
        result = client.infer("torch_greeter", [tensor]).as_numpy("OUTPUT__0")
    assert list(result) == ["hello wörld".encode(), b"hello triton"]
    with grpc.InferenceServerClient(served.grpc_address) as client:
        tensor = grpc.InferInput("INPUT__0", [2], "BYTES")
        tensor.set_data_from_numpy(names)
        result = client.infer("torch_greeter", [tensor]).as_numpy("OUTPUT__0")
    assert list(result) == ["hello wörld".encode(), b"hello triton"]


@pytest.mark.parametrize(
    ("model", "http_status", "grpc_status", "message"),
    [
        ("torch_failing", "500", "StatusCode.INTERNAL", "PyTorch execute failure: "),
        ("torch_wrong_type", "400", "StatusCode.INVALID_ARGUMENT",
         "configuration expects datatype TYPE_FP32 for output 'OUTPUT__0', model provides TYPE_INT64"),
    ],
)
def test_model_errors_reach_the_client_in_tritons_form(served: Any, model: str, http_status: str, grpc_status: str,
                                                       message: str) -> None:
    import tritonclient.grpc as grpc
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    served.require("http")
    served.require("grpc")
    x = -np.ones((1, 2), np.float32)
    tensor = http.InferInput("INPUT__0", [1, 2], "FP32")
    tensor.set_data_from_numpy(x)
    with http.InferenceServerClient(served.http_url) as client, pytest.raises(InferenceServerException) as info:
        client.infer(model, [tensor])
    assert info.value.status() == http_status and message in str(info.value)
    gtensor = grpc.InferInput("INPUT__0", [1, 2], "FP32")
    gtensor.set_data_from_numpy(x)
    with grpc.InferenceServerClient(served.grpc_address) as client, pytest.raises(InferenceServerException) as info:
        client.infer(model, [gtensor])
    assert info.value.status() == grpc_status and message in str(info.value)
    # the model keeps serving
    ok = http.InferInput("INPUT__0", [1, 2], "FP32")
    ok.set_data_from_numpy(np.ones((1, 2), np.float32))
    with http.InferenceServerClient(served.http_url) as client:
        assert client.infer("torch_failing", [ok]).as_numpy("OUTPUT__0").tolist() == [[2.0, 2.0]]


def test_shape_and_type_mismatches_are_rejected_before_the_model(served: Any) -> None:
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    served.require("http")
    with http.InferenceServerClient(served.http_url) as client:
        wrong_shape = http.InferInput("INPUT__0", [1, 3], "INT32")
        wrong_shape.set_data_from_numpy(np.ones((1, 3), np.int32))
        other = http.InferInput("INPUT__1", [1, 3], "INT32")
        other.set_data_from_numpy(np.ones((1, 3), np.int32))
        with pytest.raises(InferenceServerException) as info:
            client.infer("simple_torchscript", [wrong_shape, other])
        assert info.value.status() == "400"
        wrong_type = http.InferInput("INPUT__0", [1, 16], "FP32")
        wrong_type.set_data_from_numpy(np.ones((1, 16), np.float32))
        with pytest.raises(InferenceServerException) as info:
            client.infer("simple_torchscript", [wrong_type, other])
        assert info.value.status() == "400"


def test_errors_in_process_carry_status_codes(inprocess: Any) -> None:
    with pytest.raises(TritiumError) as info:
        _infer(inprocess, "torch_failing", {"INPUT__0": -np.ones((1, 2), np.float32)})
    assert info.value.code is StatusCode.INTERNAL
