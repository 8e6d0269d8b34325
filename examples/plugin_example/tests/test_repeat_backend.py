"""Tests of the repeat backend: Tritium's backend conformance suite, then the model's own semantics."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from tritium_backend_repeat.backend import MODEL_FILENAME, RepeatBackend

import tritium
from tritium.config import ModelConfig, parse_model_config
from tritium.testing import BackendConformance
from tritium.testing.backend import run_decoupled
from tritium.testing.builders import build_request
from tritium.testing.fakes import model_source, placement

DECOUPLED = """
name: "repeat_int32"
backend: "repeat"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [
  { name: "IN" data_type: TYPE_INT32 dims: [ -1 ] },
  { name: "DELAY" data_type: TYPE_UINT32 dims: [ -1 ] optional: true },
  { name: "WAIT" data_type: TYPE_UINT32 dims: [ 1 ] optional: true }
]
output [
  { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] },
  { name: "IDX" data_type: TYPE_UINT32 dims: [ 1 ] }
]
"""
NOT_DECOUPLED = """
name: "repeat_once"
backend: "repeat"
input [ { name: "IN" data_type: TYPE_INT32 dims: [ -1 ] } ]
output [
  { name: "OUT" data_type: TYPE_INT32 dims: [ -1 ] },
  { name: "IDX" data_type: TYPE_UINT32 dims: [ -1 ] }
]
"""
BATCHING = """
name: "repeat_batched"
backend: "repeat"
max_batch_size: 4
"""
CONFIG_LESS = """
name: "repeat_auto"
backend: "repeat"
"""


def write_repeat_model(repo: Path, config_text: str, model_file: str = "{}") -> tuple[tritium.ModelSource, ModelConfig]:
    """Lay out ``<repo>/<name>/config.pbtxt`` and ``1/model.repeat``; return its source and config."""
    config = parse_model_config(config_text, "config.pbtxt")
    model_dir = repo / config.name
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "config.pbtxt").write_text(config_text)
    (model_dir / "1" / MODEL_FILENAME).write_text(model_file)
    return model_source(model_dir, 1, MODEL_FILENAME), config


# ---------------------------------------------------------------------------------------- conformance
class TestRepeatConformance(BackendConformance):
    """Every test of tritium.testing.BackendConformance, for four repeat models."""

    @pytest.fixture
    def backend(self) -> RepeatBackend:
        return RepeatBackend({})

    @pytest.fixture(
        params=[
            (DECOUPLED, "{}"),
            (NOT_DECOUPLED, "{}"),
            (BATCHING, "{}"),
            (CONFIG_LESS, '{"decoupled": true}'),
        ],
        ids=["decoupled", "not-decoupled", "batching", "auto-completed"],
    )
    def model_source_and_config(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> tuple[tritium.ModelSource, ModelConfig]:
        config_text, model_file = request.param
        return write_repeat_model(tmp_path, config_text, model_file)

    @pytest.fixture
    def sample_requests(self, loaded_config: ModelConfig) -> list[tritium.InferenceRequest]:
        """The default samples, plus requests using the optional DELAY and WAIT with small values (where the
        config declares them: build_request refuses values of inputs the model does not have)."""
        plain = build_request(loaded_config, batch_size=1, variable_dim=3)
        values = {"IN": np.array([7, 8, 9]), "DELAY": np.array([1, 0, 2]), "WAIT": np.array([1])}
        batch_size = 1
        if loaded_config.max_batch_size > 0:  # the batch dimension first
            values = {
                "IN": np.array([[7, 8, 9], [1, 2, 3]]),
                "DELAY": np.array([[1, 0, 2], [0, 0, 0]]),
                "WAIT": np.array([[1], [0]]),
            }
            batch_size = 2
        declared = {tensor.name for tensor in loaded_config.input}
        timed = build_request(
            loaded_config, batch_size=batch_size, values={k: v for k, v in values.items() if k in declared}
        )
        return [plain, timed]


# ------------------------------------------------------------------------------------------ semantics
@pytest.fixture
def decoupled(tmp_path: Path) -> tuple[tritium.ModelInstance, ModelConfig]:
    source, config = write_repeat_model(tmp_path, DECOUPLED)
    instance = RepeatBackend({}).create_instance(source, config, placement(config))
    return instance, config


def repeat_request(config: ModelConfig, **values: list[int]) -> tritium.InferenceRequest:
    return build_request(config, values={k: np.array(v) for k, v in values.items()})


def test_decoupled_sends_one_response_per_element_then_final(decoupled) -> None:
    instance, config = decoupled
    sent = run_decoupled(instance, repeat_request(config, IN=[4, 5, 6]))
    assert [final for _, final in sent] == [False, False, False, True]
    assert sent[-1][0] is None
    assert [int(out["OUT"][0]) for out, _ in sent[:-1]] == [4, 5, 6]
    assert [int(out["IDX"][0]) for out, _ in sent[:-1]] == [0, 1, 2]
    assert all(out["OUT"].shape == (1,) and out["IDX"].dtype == np.uint32 for out, _ in sent[:-1])


def test_decoupled_empty_input_sends_only_the_final_flag(decoupled) -> None:
    instance, config = decoupled
    assert run_decoupled(instance, repeat_request(config, IN=[])) == [(None, True)]


def test_decoupled_honours_delay_and_wait(decoupled) -> None:
    instance, config = decoupled
    start = time.monotonic()
    sent = run_decoupled(instance, repeat_request(config, IN=[1, 2], DELAY=[40, 40], WAIT=[40]))
    assert time.monotonic() - start >= 0.12
    assert len(sent) == 3


def test_decoupled_delay_must_match_in(decoupled) -> None:
    instance, config = decoupled
    with pytest.raises(tritium.TritiumError) as info:
        run_decoupled(instance, repeat_request(config, IN=[1, 2], DELAY=[1]))
    assert info.value.code is tritium.StatusCode.INVALID_ARG


def test_decoupled_sends_only_requested_outputs(decoupled) -> None:
    instance, config = decoupled
    request = repeat_request(config, IN=[3])
    request.requested_outputs = [tritium.RequestedOutput("IDX")]
    sent = run_decoupled(instance, request)
    assert sorted(sent[0][0]) == ["IDX"]


def test_not_decoupled_answers_once_with_everything(tmp_path: Path) -> None:
    source, config = write_repeat_model(tmp_path, NOT_DECOUPLED)
    instance = RepeatBackend({}).create_instance(source, config, placement(config))
    request = repeat_request(config, IN=[5, 6, 7])
    batch = tritium.Batch({"IN": request.inputs["IN"].data}, frozenset(), [request], 0)
    outputs = instance.execute(batch)
    assert outputs["OUT"].tolist() == [5, 6, 7]
    assert outputs["IDX"].tolist() == [0, 1, 2]


def test_batched_rows_are_repeated_independently(tmp_path: Path) -> None:
    backend = RepeatBackend({})
    source, config = write_repeat_model(tmp_path, BATCHING)
    config = backend.auto_complete_config(source, config)
    instance = backend.create_instance(source, config, placement(config))
    values = np.array([[1, 2], [3, 4]], dtype=np.int32)
    outputs = instance.execute(tritium.Batch({"IN": values}, frozenset({"IDX"}), [], 2))
    assert sorted(outputs) == ["IDX"]
    assert outputs["IDX"].tolist() == [[0, 1], [0, 1]]


def test_auto_complete_fills_a_config_less_model(tmp_path: Path) -> None:
    source, config = write_repeat_model(tmp_path, CONFIG_LESS, '{"decoupled": true}')
    completed = RepeatBackend({}).auto_complete_config(source, config)
    assert completed.model_transaction_policy.decoupled
    assert [(t.name, list(t.dims), t.optional) for t in completed.input] == [
        ("IN", [-1], False),
        ("DELAY", [-1], True),
        ("WAIT", [1], True),
    ]
    assert [(t.name, list(t.dims)) for t in completed.output] == [("OUT", [1]), ("IDX", [1])]


def test_auto_complete_never_overrides_the_config(tmp_path: Path) -> None:
    # The model file says decoupled, the config says otherwise: the config wins.
    text = CONFIG_LESS + "model_transaction_policy { decoupled: false }\n"
    source, config = write_repeat_model(tmp_path, text, '{"decoupled": true}')
    completed = RepeatBackend({}).auto_complete_config(source, config)
    assert not completed.model_transaction_policy.decoupled
    assert [list(t.dims) for t in completed.output] == [[-1], [-1]]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('input [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]', "unexpected input 'X'"),
        ('input [ { name: "IN" data_type: TYPE_FP32 dims: [ -1 ] } ]', "TYPE_INT32"),
        ("max_batch_size: 2\nmodel_transaction_policy { decoupled: true }", "does not batch"),
    ],
)
def test_invalid_configs_are_config_errors(tmp_path: Path, extra: str, message: str) -> None:
    source, config = write_repeat_model(tmp_path, CONFIG_LESS + extra)
    with pytest.raises(tritium.ConfigError, match=message):
        RepeatBackend({}).auto_complete_config(source, config)


@pytest.mark.parametrize(
    "content", ["not json", "[1, 2]", '{"colour": "red"}', '{"delay_ms": -1}', '{"decoupled": "yes"}']
)
def test_invalid_model_files_are_config_errors(tmp_path: Path, content: str) -> None:
    source, config = write_repeat_model(tmp_path, DECOUPLED, content)
    with pytest.raises(tritium.ConfigError, match=MODEL_FILENAME):
        RepeatBackend({}).create_instance(source, config, placement(config))


def test_config_parameter_sets_the_delay_and_is_checked(tmp_path: Path) -> None:
    source, config = write_repeat_model(tmp_path, DECOUPLED)
    config.parameters["delay_ms"].string_value = "30"
    instance = RepeatBackend({}).create_instance(source, config, placement(config))
    start = time.monotonic()
    run_decoupled(instance, repeat_request(config, IN=[1, 2]))
    assert time.monotonic() - start >= 0.06
    config.parameters["delay_ms"].string_value = "soon"
    with pytest.raises(tritium.ConfigError, match="parameter 'delay_ms' must be a whole number"):
        RepeatBackend({}).create_instance(source, config, placement(config))


def test_backend_config_sets_the_default_delay(tmp_path: Path) -> None:
    source, config = write_repeat_model(tmp_path, DECOUPLED)
    instance = RepeatBackend({"default-delay-ms": "30"}).create_instance(source, config, placement(config))
    start = time.monotonic()
    run_decoupled(instance, repeat_request(config, IN=[1, 2]))
    assert time.monotonic() - start >= 0.06
