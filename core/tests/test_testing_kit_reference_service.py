"""The kit's reference fake service (``tritium.testing.service.ReferenceService``) behaves as its frontends' tests
rely on: configured models, the kernel's own validation, a synchronous ``infer_nowait`` unless the request waits,
the ``hold`` hook, classification, a failing decoupled stream."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tritium import DataType, InferenceRequest, InferenceResponse, RequestedOutput, StatusCode, Tensor, TritiumError
from tritium.testing.service import ReferenceModel, ReferenceService

SIMPLE = ReferenceModel(
    inputs=(("INPUT0", "INT32", (-1, 4)), ("INPUT1", "INT32", (-1, 4))),
    outputs=(("OUTPUT0", "INT32", (-1, 4)), ("OUTPUT1", "INT32", (-1, 4))),
)


def simple_request(rows: int = 1, **parameters: object) -> InferenceRequest:
    data = np.arange(4 * rows, dtype=np.int32).reshape(rows, 4)
    return InferenceRequest(
        model_name="simple",
        id="r",
        inputs={f"INPUT{i}": Tensor(f"INPUT{i}", DataType.INT32, data + i) for i in range(2)},
        parameters=dict(parameters),
    )


def test_models_extensions_and_platform_are_constructor_arguments() -> None:
    service = ReferenceService(models={"simple": SIMPLE}, extensions=("binary_tensor_data",), platform="fake")
    assert service.server_metadata()["extensions"] == ["binary_tensor_data"]
    assert service.model_metadata("simple")["platform"] == "fake"
    assert [t.name for t in service.model_config("simple").output] == ["OUTPUT0", "OUTPUT1"]
    assert not service.model_ready("identity")  # the class's default models are replaced
    assert "identity" in ReferenceService().models  # and the class defaults are untouched


def test_infer_nowait_answers_synchronously_and_records_the_request() -> None:
    service = ReferenceService(models={"simple": SIMPLE})
    response = service.infer_nowait(simple_request())
    assert isinstance(response, InferenceResponse)
    assert response.outputs[1].data.tolist() == [[1, 2, 3, 4]]
    assert service.last_request is not None and service.last_request.id == "r"


async def test_a_held_request_waits_for_the_hook() -> None:
    service = ReferenceService(models={"simple": SIMPLE})
    release = asyncio.Event()

    async def hold() -> None:
        await release.wait()

    service.hold = hold
    pending = service.infer_nowait(simple_request())
    assert not isinstance(pending, InferenceResponse)
    task = asyncio.ensure_future(pending)  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    assert not task.done()
    release.set()
    assert (await asyncio.wait_for(task, 5)).outputs[0].data.tolist() == [[0, 1, 2, 3]]


async def test_validate_refuses_what_the_kernel_refuses_in_its_words() -> None:
    service = ReferenceService(models={"simple": SIMPLE}, validate=True)
    missing = simple_request()
    del missing.inputs["INPUT1"]
    with pytest.raises(TritiumError) as caught:
        service.infer_nowait(missing)
    assert caught.value.code is StatusCode.INVALID_ARG and "[request id: r] expected 2 inputs" in str(caught.value)
    too_many = simple_request(rows=9)
    with pytest.raises(TritiumError, match="batch-size must be <= 8 for 'simple'"):
        await service.infer(too_many)
    assert (await service.infer(simple_request(rows=2))).outputs[0].data.shape == (2, 4)
    # Without validate, the fake answers whatever it gets (frontend tests of odd shapes and datatypes).
    assert ReferenceService(models={"simple": SIMPLE}).infer_nowait(missing) is not None


def test_requested_classification_is_rendered_as_triton_does() -> None:
    service = ReferenceService(models={"simple": SIMPLE})
    request = simple_request()
    request.requested_outputs = [RequestedOutput("OUTPUT0", classification=2)]
    response = service.infer_nowait(request)
    assert isinstance(response, InferenceResponse)
    (output,) = response.outputs
    assert output.datatype is DataType.BYTES and output.data.tolist() == [[b"3:3", b"2:2"]]


async def test_a_decoupled_stream_fails_at_the_response_asked() -> None:
    service = ReferenceService(platform="ref")
    request = InferenceRequest(model_name="repeat", id="s", inputs={}, parameters={"repeat": 3, "fail_at": 1})
    received = []
    with pytest.raises(TritiumError, match="ref failed at response 1 of 's'"):
        async for response in service.infer_stream(request):
            received.append(response)
    assert len(received) == 1
