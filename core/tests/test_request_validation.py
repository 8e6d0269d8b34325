"""Request validation against a model config, with Triton's exact messages."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from tritium import DataType, InferenceRequest, RequestedOutput, Tensor, TritiumError
from tritium._runtime.validation import RequestValidator
from tritium.proto.model_config_pb2 import ModelConfig

ADDSUB = """
name: "addsub"
max_batch_size: 8
input [ { name: "IN_A" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "IN_B" data_type: TYPE_INT32 dims: [ 16 ] } ]
output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 16 ] } ]
"""
NOBATCH = """
name: "nb"
input [ { name: "X" data_type: TYPE_FP32 dims: [ -1, 3 ] },
        { name: "OPT" data_type: TYPE_FP32 dims: [ 1 ] optional: true } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ -1, 3 ] } ]
"""
RESHAPED = """
name: "rs"
max_batch_size: 4
input [ { name: "S" data_type: TYPE_FP32 dims: [ 1 ] reshape: { shape: [ ] } } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] } ]
"""


def validator(text: str) -> RequestValidator:
    return RequestValidator(text_format.Parse(text, ModelConfig()))


def req(**arrays: np.ndarray) -> InferenceRequest:
    return InferenceRequest(
        model_name="m", inputs={n: Tensor(n, DataType.from_numpy(a.dtype), a) for n, a in arrays.items()}
    )


def ints(*shape: int) -> np.ndarray:
    return np.zeros(shape, dtype=np.int32)


def test_valid_request_gets_its_batch_size() -> None:
    r = req(IN_A=ints(3, 16), IN_B=ints(3, 16))
    validator(ADDSUB).validate(r)
    assert r.batch_size == 3


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"IN_A": ints(1, 16)},
            "[request id: <id_unknown>] expected 2 inputs but got 1 inputs for model 'addsub'. Got input(s) "
            "['IN_A'], but missing required input(s) ['IN_B']. Please provide all required input(s).",
        ),
        (
            {"IN_A": np.zeros((1, 16), np.float32), "IN_B": ints(1, 16)},
            "[request id: <id_unknown>] inference input 'IN_A' data-type is 'FP32', but model 'addsub' expects "
            "'INT32'",
        ),
        (
            {"IN_A": ints(1, 16), "IN_B": ints(1, 15)},
            "[request id: <id_unknown>] unexpected shape for input 'IN_B' for model 'addsub'. Expected [-1,16], "
            "got [1,15]. NOTE: Setting a non-zero max_batch_size",
        ),
        (
            {"IN_A": ints(9, 16), "IN_B": ints(9, 16)},
            "[request id: <id_unknown>] inference request batch-size must be <= 8 for 'addsub'",
        ),
        (
            {"IN_A": ints(1, 16), "IN_B": ints(2, 16)},
            "input 'IN_A' batch size does not match other inputs for 'addsub'",
        ),
        (
            {"IN_A": ints(1, 16), "IN_B": ints(1, 16), "IN_C": ints(1, 16)},
            "expected 2 inputs but got 3 inputs for model 'addsub'.",
        ),
        ({"IN_A": ints(16), "IN_B": ints(16)}, "inference request batch-size must be <= 8"),  # 16 is the batch
        ({"IN_A": ints(4), "IN_B": ints(4)}, "unexpected shape for input 'IN_B'"),
    ],
)
def test_triton_messages(arrays: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(TritiumError) as info:
        validator(ADDSUB).validate(req(**arrays))
    assert info.value.message.startswith(message) or message in info.value.message


def test_unknown_input_name() -> None:
    with pytest.raises(TritiumError, match="unexpected inference input 'IN_X' for model 'addsub'"):
        validator(ADDSUB).validate(req(IN_A=ints(1, 16), IN_X=ints(1, 16)))


def test_request_id_prefix() -> None:
    r = req(IN_A=ints(9, 16), IN_B=ints(9, 16))
    r.id = "42"
    with pytest.raises(TritiumError, match=r"^\[request id: 42\] inference request batch-size must be <= 8"):
        validator(ADDSUB).validate(r)


def test_unknown_outputs_come_first_by_name_without_the_request_id() -> None:
    """Triton checks the requested outputs (an ordered set) before anything else, and its message for an
    unknown one has no request-id prefix (observed with Triton 2.51; same code in 2.73)."""
    r = req(IN_A=ints(1, 16))  # an input is missing too
    r.id = "42"
    r.requested_outputs = [RequestedOutput("ZZ"), RequestedOutput("OUT"), RequestedOutput("AA")]
    with pytest.raises(TritiumError) as info:
        validator(ADDSUB).validate(r)
    assert info.value.message == "unexpected inference output 'AA' for model 'addsub'"


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (  # both wrong: Triton walks the inputs in reverse order of arrival
            {"IN_A": np.zeros((1, 16), np.float32), "IN_B": np.zeros((1, 16), np.float32)},
            "[request id: <id_unknown>] inference input 'IN_B' data-type is 'FP32', but model 'addsub' expects "
            "'INT32'",
        ),
        (  # the batch size is checked before the datatypes
            {"IN_A": np.zeros((9, 16), np.float32), "IN_B": ints(9, 16)},
            "[request id: <id_unknown>] inference request batch-size must be <= 8 for 'addsub'",
        ),
        (  # batch sizes that differ, before the datatypes; reported on the input walked second
            {"IN_A": np.zeros((2, 16), np.float32), "IN_B": ints(1, 16)},
            "[request id: <id_unknown>] input 'IN_A' batch size does not match other inputs for 'addsub'",
        ),
        (  # an unknown input has no request-id prefix
            {"IN_A": ints(1, 16), "IN_X": ints(1, 16)},
            "unexpected inference input 'IN_X' for model 'addsub'",
        ),
        (
            {"IN_A": np.zeros((), np.int32), "IN_B": ints(1, 16)},
            "[request id: <id_unknown>] input 'IN_A' has no shape but model requires batch dimension for "
            "'addsub'",
        ),
        (  # too many inputs, none missing: Triton's list of the missing ones loses its "["
            {"IN_A": ints(1, 16), "IN_B": ints(1, 16), "IN_C": ints(1, 16)},
            "[request id: <id_unknown>] expected 2 inputs but got 3 inputs for model 'addsub'. Got input(s) "
            "['IN_C','IN_B','IN_A'], but missing required input(s) ]. Please provide all required input(s).",
        ),
        (
            {"IN_X": ints(1, 16)},
            "[request id: <id_unknown>] expected 2 inputs but got 1 inputs for model 'addsub'. Got input(s) "
            "['IN_X'], but missing required input(s) ['IN_A','IN_B']. Please provide all required input(s).",
        ),
    ],
)
def test_several_faults_get_the_error_triton_reports(arrays: dict[str, np.ndarray], message: str) -> None:
    """Messages and precedence observed with real Triton 2.51 on the same requests."""
    with pytest.raises(TritiumError) as info:
        validator(ADDSUB).validate(req(**arrays))
    assert info.value.message == message


def test_non_batching_model_with_wildcards_and_optional_input() -> None:
    v = validator(NOBATCH)
    r = req(X=np.zeros((5, 3), np.float32))
    v.validate(r)
    assert r.batch_size == 0
    v.validate(req(X=np.zeros((2, 3), np.float32), OPT=np.zeros(1, np.float32)))
    with pytest.raises(TritiumError, match=r"Expected \[-1,3\], got \[2,4\]\.$"):
        v.validate(req(X=np.zeros((2, 4), np.float32)))
    with pytest.raises(TritiumError, match="expected number of inputs between 1 and 2 but got 0 inputs"):
        v.validate(req())


def test_reshape_is_applied() -> None:
    r = req(S=np.zeros((3, 1), np.float32))
    validator(RESHAPED).validate(r)
    assert r.inputs["S"].data.shape == (3,)
