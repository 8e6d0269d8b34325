"""End to end for the Python backend: ``tritium serve`` with Python models written the way Triton's
documentation writes them (add_sub, decoupled repeat, BLS sync/async/decoupled, an auto-completed model, a
model that fails on purpose), queried with NVIDIA's ``tritonclient`` over HTTP and gRPC (streaming for the
decoupled model), in the default isolated mode and in-process."""

from __future__ import annotations

import queue
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("tritium_backend_python")
httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.timeout(300)

MODELS = Path(__file__).resolve().parents[1] / "plugins" / "backend_python" / "tests" / "models"
IN_PROCESS = '\nparameters { key: "TRITIUM_EXECUTION_MODE" value { string_value: "in-process" } }\n'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tritium_serve_factory: Any) -> Any:
    repo = tmp_path_factory.mktemp("python-models")
    for name in ("add_sub", "repeat", "bls_sync", "bls_async", "bls_decoupled", "bls_async_decoupled",
                 "identity_auto", "errors"):
        shutil.copytree(MODELS / name, repo / name)
    shutil.copytree(MODELS / "add_sub", repo / "add_sub_inprocess")
    config = (repo / "add_sub" / "config.pbtxt").read_text().replace('name: "add_sub"', 'name: "add_sub_inprocess"')
    (repo / "add_sub_inprocess" / "config.pbtxt").write_text(config + IN_PROCESS)
    shutil.copytree(MODELS / "add_sub", repo / "add_sub_custom_file")
    (repo / "add_sub_custom_file" / "1" / "model.py").rename(repo / "add_sub_custom_file" / "1" / "custom.py")
    config = (repo / "add_sub" / "config.pbtxt").read_text().replace('name: "add_sub"', 'name: "add_sub_custom_file"')
    (repo / "add_sub_custom_file" / "config.pbtxt").write_text(config + 'default_model_filename: "custom.py"\n')
    shutil.copytree(MODELS / "repeat", repo / "repeat_inprocess")
    config = (repo / "repeat" / "config.pbtxt").read_text().replace('name: "repeat"', 'name: "repeat_inprocess"')
    (repo / "repeat_inprocess" / "config.pbtxt").write_text(config + IN_PROCESS)
    return tritium_serve_factory(f"--model-repository={repo}")


def fp32_inputs(module: Any) -> tuple[list[Any], np.ndarray, np.ndarray]:
    a = np.array([1.5, 2.0, -3.0, 4.25], np.float32)
    b = np.array([0.5, 1.0, 1.0, -0.25], np.float32)
    inputs = [module.InferInput("INPUT0", [4], "FP32"), module.InferInput("INPUT1", [4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    return inputs, a, b


@pytest.mark.parametrize("model", ["add_sub", "add_sub_inprocess", "add_sub_custom_file"])
def test_add_sub_over_http_and_grpc(server: Any, model: str) -> None:
    for module, url in ((httpclient, server.http_url), (grpcclient, server.grpc_address)):
        client = module.InferenceServerClient(url)
        inputs, a, b = fp32_inputs(module)
        result = client.infer(model, inputs)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
        assert client.is_model_ready(model)
        client.close()


def test_concurrent_requests_all_answered(server: Any) -> None:
    client = httpclient.InferenceServerClient(server.http_url, concurrency=8)
    inputs, a, b = fp32_inputs(httpclient)
    pending = [client.async_infer("add_sub", inputs) for _ in range(64)]
    for request in pending:
        np.testing.assert_array_equal(request.get_result().as_numpy("OUTPUT0"), a + b)
    client.close()


def test_auto_complete_config_is_served(server: Any) -> None:
    client = httpclient.InferenceServerClient(server.http_url)
    config = client.get_model_config("identity_auto")
    assert config["max_batch_size"] == 8
    assert "dynamic_batching" in config
    assert [(i["name"], i["data_type"], i["dims"]) for i in config["input"]] == [("INPUT0", "TYPE_FP32", [-1])]
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    values = httpclient.InferInput("INPUT0", [2, 3], "FP32")
    values.set_data_from_numpy(data)
    np.testing.assert_array_equal(client.infer("identity_auto", [values]).as_numpy("OUTPUT0"), data)
    client.close()


@pytest.mark.parametrize("model", ["repeat", "repeat_inprocess"])
def test_decoupled_repeat_streams_over_grpc(server: Any, model: str) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_address)
    responses: queue.Queue[Any] = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    values = np.array([4, 5, 6, 7], np.int32)
    inputs = [grpcclient.InferInput("IN", [4], "INT32"), grpcclient.InferInput("DELAY", [4], "UINT32")]
    inputs[0].set_data_from_numpy(values)
    inputs[1].set_data_from_numpy(np.array([1, 0, 2, 0], np.uint32))
    client.async_stream_infer(model, inputs, request_id="r1", enable_empty_final_response=True)
    seen = []
    while True:
        result, error = responses.get(timeout=30)
        assert error is None, error
        response = result.get_response()
        if response.outputs:
            seen.append((int(result.as_numpy("OUT")[0]), int(result.as_numpy("IDX")[0])))
        if response.parameters["triton_final_response"].bool_param:
            break
    client.stop_stream()
    client.close()
    assert seen == [(4, 0), (5, 1), (6, 2), (7, 3)]


def test_decoupled_model_refused_on_unary_http(server: Any) -> None:
    client = httpclient.InferenceServerClient(server.http_url)
    values = httpclient.InferInput("IN", [1], "INT32")
    values.set_data_from_numpy(np.array([1], np.int32))
    with pytest.raises(InferenceServerException, match="decoupled"):
        client.infer("repeat", [values])
    client.close()


def errors_input(module: Any, x: int) -> list[Any]:
    value = module.InferInput("X", [1, 1], "INT32")
    value.set_data_from_numpy(np.array([[x]], np.int32))
    return [value]


def test_model_errors_reach_the_client(server: Any) -> None:
    http = httpclient.InferenceServerClient(server.http_url)
    grpc = grpcclient.InferenceServerClient(server.grpc_address)
    with pytest.raises(InferenceServerException) as caught:
        http.infer("errors", errors_input(httpclient, 1))
    assert caught.value.status() == "500"
    assert caught.value.message().startswith(
        "Failed to process the request(s) for model 'errors_0', message: ValueError: x is one\n\nAt:\n"
    )
    assert "/errors/1/model.py(" in caught.value.message()
    with pytest.raises(InferenceServerException) as caught:
        http.infer("errors", errors_input(httpclient, 2))
    assert "x is two" in caught.value.message() and caught.value.status() == "400"
    with pytest.raises(InferenceServerException) as caught:
        grpc.infer("errors", errors_input(grpcclient, 2))
    assert "x is two" in caught.value.message() and caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    wrong_count = r"InferenceRequest\(s\) size is:1, and InferenceResponse\(s\) size is:0"  # Triton's words
    with pytest.raises(InferenceServerException, match=wrong_count):
        grpc.infer("errors", errors_input(grpcclient, 3))
    assert http.infer("errors", errors_input(httpclient, 5)).as_numpy("Y").tolist() == [[50]]
    http.close()
    grpc.close()


def test_a_crashing_model_is_reported_and_restarted(server: Any) -> None:
    client = httpclient.InferenceServerClient(server.http_url)
    with pytest.raises(InferenceServerException, match="exited unexpectedly"):
        client.infer("errors", errors_input(httpclient, 4))
    assert client.infer("errors", errors_input(httpclient, 6)).as_numpy("Y").tolist() == [[60]]
    assert client.is_server_live() and client.is_model_ready("errors")
    assert "exited unexpectedly" in server.log()
    client.close()


def test_bls_sync_calls_another_python_model(server: Any) -> None:
    for module, url in ((httpclient, server.http_url), (grpcclient, server.grpc_address)):
        client = module.InferenceServerClient(url)
        inputs, a, b = fp32_inputs(module)
        name = module.InferInput("MODEL_NAME", [1], "BYTES")
        name.set_data_from_numpy(np.array([b"add_sub"], dtype=object))
        result = client.infer("bls_sync", [name, *inputs])
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
        name.set_data_from_numpy(np.array([b"no_such_model"], dtype=object))
        with pytest.raises(InferenceServerException, match="no_such_model"):
            client.infer("bls_sync", [name, *inputs])
        client.close()


def test_bls_async_runs_two_calls_at_once(server: Any) -> None:
    client = httpclient.InferenceServerClient(server.http_url)
    inputs, a, b = fp32_inputs(httpclient)
    result = client.infer("bls_async", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), b - a)
    client.close()


@pytest.mark.parametrize("model", ["bls_decoupled", "bls_async_decoupled"])
def test_bls_decoupled_iterates_a_stream(server: Any, model: str) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_address)
    values = grpcclient.InferInput("IN", [5], "INT32")
    values.set_data_from_numpy(np.array([1, 2, 3, 4, 5], np.int32))
    result = client.infer(model, [values])
    assert result.as_numpy("SUM").tolist() == [15]
    assert result.as_numpy("COUNT").tolist() == [5]
    client.close()


# ------------------------------------------------------------------------------------------------------
# The Python models of the example repository (examples/python_models.py), as docs/examples.md shows them.
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def examples_server(example_repository: Path, tritium_serve_factory: Any) -> Any:
    models = ("image_classification_model", "image_preprocess", "token_stream", "classify_pipeline")
    return tritium_serve_factory(
        f"--model-repository={example_repository}", "--model-control-mode=explicit",
        *(f"--load-model={name}" for name in models),
    )


def test_example_image_preprocess(examples_server: Any) -> None:
    client = httpclient.InferenceServerClient(examples_server.http_url)
    image = np.random.default_rng(0).integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    value = httpclient.InferInput("IMAGE", list(image.shape), "UINT8")
    value.set_data_from_numpy(image)
    pixels = client.infer("image_preprocess", [value]).as_numpy("PIXELS")
    assert pixels.shape == (3, 224, 224) and pixels.dtype == np.float32
    expected = (image[0, 0, 0] / 255.0 - 0.485) / 0.229
    assert pixels[0, 0, 0] == pytest.approx(expected, rel=1e-5)
    client.close()


def test_example_token_stream(examples_server: Any) -> None:
    client = grpcclient.InferenceServerClient(examples_server.grpc_address)
    responses: queue.Queue[Any] = queue.Queue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    text = grpcclient.InferInput("TEXT", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"the quick brown fox"], dtype=object))
    client.async_stream_infer("token_stream", [text], enable_empty_final_response=True)
    tokens = []
    while True:
        result, error = responses.get(timeout=30)
        assert error is None, error
        if result.get_response().outputs:
            tokens.append((result.as_numpy("TOKEN")[0], int(result.as_numpy("INDEX")[0])))
        if result.get_response().parameters["triton_final_response"].bool_param:
            break
    client.stop_stream()
    client.close()
    assert tokens == [(b"the", 0), (b"quick", 1), (b"brown", 2), (b"fox", 3)]


def test_example_classify_pipeline_matches_calling_both_models(examples_server: Any) -> None:
    client = httpclient.InferenceServerClient(examples_server.http_url)
    image = np.random.default_rng(1).integers(0, 256, size=(64, 48, 3), dtype=np.uint8)
    value = httpclient.InferInput("IMAGE", list(image.shape), "UINT8")
    value.set_data_from_numpy(image)
    result = client.infer("classify_pipeline", [value])
    pixels = client.infer("image_preprocess", [value]).as_numpy("PIXELS")
    batch = httpclient.InferInput("INPUT0", [1, 3, 224, 224], "FP32")
    batch.set_data_from_numpy(pixels[None])
    probabilities = client.infer("image_classification_model", [batch]).as_numpy("OUTPUT0")[0]
    best = int(np.argmax(probabilities))
    assert result.as_numpy("CLASS_ID").tolist() == [best]
    assert result.as_numpy("LABEL").tolist() == [f"class_{best}".encode()]
    assert result.as_numpy("PROBABILITY")[0] == pytest.approx(probabilities[best], rel=1e-5)
    client.close()
