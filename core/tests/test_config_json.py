"""ModelConfig JSON: rendered exactly as Triton's config endpoint renders it, and parsed as its load API does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor

from tritium import ConfigError
from tritium.config import (
    INT64_AS_STRING,
    ModelConfig,
    autofill_backend_fields,
    load_model_config,
    model_config_from_json,
    model_config_to_json,
    normalize_model_config,
    parse_model_config,
)

TRITON251 = Path(__file__).parent / "data" / "configs" / "triton251"

# The 64-bit fields Triton's ModelConfigToJson turns into JSON numbers (core model_config_utils.cc).
TRITON_FIXED_INT64 = {
    "inference.ModelInput.dims",
    "inference.ModelOutput.dims",
    "inference.ModelTensorReshape.shape",
    "inference.ModelVersionPolicy.Specific.versions",
    "inference.ModelDynamicBatching.max_queue_delay_microseconds",
    "inference.ModelDynamicBatching.priority_levels",
    "inference.ModelDynamicBatching.default_priority_level",
    "inference.ModelQueuePolicy.default_timeout_microseconds",
    "inference.ModelSequenceBatching.max_sequence_idle_microseconds",
    "inference.ModelSequenceBatching.StrategyDirect.max_queue_delay_microseconds",
    "inference.ModelSequenceBatching.StrategyOldest.max_queue_delay_microseconds",
    "inference.ModelSequenceBatching.State.dims",
    "inference.ModelEnsembling.Step.model_version",
    "inference.ModelWarmup.Input.dims",
}
INT64_TYPES = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def _normalized_triton251(model: str) -> ModelConfig:
    config = autofill_backend_fields(load_model_config(TRITON251 / f"{model}.pbtxt"), model_name=model)
    return normalize_model_config(config, model_name=model, source=f"{model}/config.pbtxt")


@pytest.mark.parametrize("model", ["plain", "nobatch", "groups", "seq"])
def test_rendering_matches_triton_byte_for_byte(model: str) -> None:
    rendered = _dumps(model_config_to_json(_normalized_triton251(model)))
    assert rendered == (TRITON251 / f"{model}.json").read_text()


def test_ensemble_rendering_matches_triton() -> None:
    config = _normalized_triton251("ens")
    config.model_transaction_policy.decoupled = False  # Triton derives it from the steps (scheduler's job)
    rendered = model_config_to_json(config)
    assert rendered["ensemble_scheduling"].pop("max_inflight_requests") == 0  # newer than Triton 2.51
    assert _dumps(rendered) == (TRITON251 / "ens.json").read_text()


def _int64_fields(descriptor: Any, seen: set[str] | None = None) -> set[str]:
    seen = set() if seen is None else seen
    found: set[str] = set()
    if descriptor.full_name in seen:
        return found
    seen.add(descriptor.full_name)
    for field in descriptor.fields:
        if field.type in INT64_TYPES and not descriptor.GetOptions().map_entry:
            found.add(field.full_name)
        if field.message_type is not None:
            found |= _int64_fields(field.message_type, seen)
    return found


def test_every_64_bit_field_is_either_fixed_like_triton_or_left_as_string() -> None:
    # Triton's ValidateModelConfigInt64 guards the same list: a new 64-bit field must be decided on.
    assert _int64_fields(ModelConfig.DESCRIPTOR) == TRITON_FIXED_INT64 | INT64_AS_STRING
    assert not TRITON_FIXED_INT64 & INT64_AS_STRING


def test_64_bit_fields_are_numbers_except_where_triton_leaves_strings() -> None:
    config = parse_model_config(
        """
        max_batch_size: 4
        input { name: "I" data_type: TYPE_FP32 dims: [ -1, 3 ] reshape { shape: [ 3, -1 ] } }
        version_policy { specific { versions: [ 1, 9007199254740993 ] } }
        dynamic_batching {
          max_queue_delay_microseconds: 18446744073709551615 priority_levels: 2 default_priority_level: 1
          priority_queue_policy { key: 2 value { default_timeout_microseconds: 7 } }
        }
        model_warmup { inputs { key: "I" value { dims: [ 2, 3 ] zero_data: true } } }
        instance_group { secondary_devices { device_id: 5 } }
        optimization { cuda { graph_spec { input { key: "I" value { dim: [ 4 ] } } } } }
        """
    )
    rendered = model_config_to_json(config)
    assert rendered["input"][0]["dims"] == [-1, 3]
    assert rendered["input"][0]["reshape"] == {"shape": [3, -1]}
    assert rendered["version_policy"] == {"specific": {"versions": [1, 9007199254740993]}}
    batching = rendered["dynamic_batching"]
    assert batching["max_queue_delay_microseconds"] == 18446744073709551615
    assert batching["priority_queue_policy"]["2"]["default_timeout_microseconds"] == 7  # map key: string
    assert rendered["model_warmup"][0]["inputs"]["I"]["dims"] == [2, 3]
    assert rendered["instance_group"][0]["secondary_devices"][0]["device_id"] == "5"
    assert rendered["optimization"]["cuda"]["graph_spec"][0]["input"]["I"]["dim"] == ["4"]
    ensemble = model_config_to_json(parse_model_config("ensemble_scheduling { step { model_version: -1 } }"))
    assert ensemble["ensemble_scheduling"]["step"][0]["model_version"] == -1


def test_an_empty_config_prints_every_field_without_presence() -> None:
    assert model_config_to_json(ModelConfig()) == {
        "name": "",
        "platform": "",
        "backend": "",
        "runtime": "",
        "max_batch_size": 0,
        "input": [],
        "output": [],
        "batch_input": [],
        "batch_output": [],
        "instance_group": [],
        "default_model_filename": "",
        "cc_model_filenames": {},
        "metric_tags": {},
        "parameters": {},
        "model_warmup": [],
    }


def test_enums_by_name_and_unknown_enum_numbers_as_numbers() -> None:
    config = parse_model_config("input { data_type: TYPE_STRING format: FORMAT_NCHW } output { data_type: 99 }")
    rendered = model_config_to_json(config)
    assert (rendered["input"][0]["data_type"], rendered["input"][0]["format"]) == ("TYPE_STRING", "FORMAT_NCHW")
    assert rendered["output"][0]["data_type"] == 99


def test_floats_print_like_cpp_protobuf() -> None:
    config = parse_model_config(
        """
        sequence_batching {
          direct { minimum_slot_utilization: 0.1 }
          control_input { control { fp32_false_true: [ 0, 1 ] } }
          control_input { control { fp32_false_true: [ nan, -inf ] } }
        }
        model_metrics { metric_control { histogram_options { buckets: [ 1, 2.5, 1e20 ] } } }
        """
    )
    rendered = model_config_to_json(config)
    sequence = rendered["sequence_batching"]
    assert sequence["direct"]["minimum_slot_utilization"] == 0.1  # float32 0.1, shortest form
    assert sequence["control_input"][0]["control"][0]["fp32_false_true"] == [0, 1]
    assert sequence["control_input"][1]["control"][0]["fp32_false_true"] == ["NaN", "-Infinity"]
    assert _dumps(rendered["model_metrics"]).endswith('"buckets":[1,2.5,1e+20]}}]}')


def test_scalar_oneof_members_come_last_as_in_triton() -> None:
    config = parse_model_config(
        'sequence_batching { state { initial_state { data_type: TYPE_FP32 dims: 1 zero_data: true name: "i" } } }'
    )
    initial = model_config_to_json(config)["sequence_batching"]["state"][0]["initial_state"][0]
    assert list(initial) == ["data_type", "dims", "name", "zero_data"]


@pytest.mark.parametrize("model", ["plain", "nobatch", "groups", "seq", "ens"])
def test_triton_json_parses_back_to_the_same_config(model: str) -> None:
    text = (TRITON251 / f"{model}.json").read_text()
    config = model_config_from_json(text)
    assert model_config_to_json(config) == model_config_to_json(model_config_from_json(json.loads(text)))
    rendered = model_config_to_json(config)
    rendered.get("ensemble_scheduling", {}).pop("max_inflight_requests", None)
    assert _dumps(rendered) == text


@pytest.mark.parametrize("model", ["plain", "nobatch", "groups", "seq", "ens"])
def test_json_round_trip_of_normalized_configs(model: str) -> None:
    config = _normalized_triton251(model)
    assert model_config_from_json(_dumps(model_config_to_json(config))) == config


def test_json_accepts_camel_case_string_integers_and_any_enum_case() -> None:
    config = model_config_from_json(
        {
            "name": "m",
            "maxBatchSize": 8,
            "input": [{"name": "I", "dataType": "type_fp32", "dims": ["-1", 4]}],
            "dynamicBatching": {"maxQueueDelayMicroseconds": "100", "priorityLevels": 2, "defaultPriorityLevel": 1,
                                "priorityQueuePolicy": {"2": {"timeoutAction": "delay"}}},
            "instance_group": [{"kind": "Kind_Cpu", "count": 2}],
        }
    )  # fmt: skip
    assert config.max_batch_size == 8
    assert config.input[0].data_type == ModelConfig().input.add(data_type="TYPE_FP32").data_type
    assert list(config.input[0].dims) == [-1, 4]
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    assert config.dynamic_batching.priority_queue_policy[2].timeout_action == 1
    assert config.instance_group[0].kind == 2


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ('{"name": "m", "max_batch_sise": 1}', "max_batch_sise"),
        ('{"input": [{"data_type": "TYPE_NOPE"}]}', "TYPE_NOPE"),
        ("{not json", "invalid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"max_batch_size": "x"}', "max_batch_size"),
        ('{"input": {"name": "x"}}', "input"),
    ],
)
def test_json_errors_name_the_source(data: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        model_config_from_json(data, source="load request for 'm'")
    assert str(caught.value).startswith("load request for 'm': ")
    assert fragment in str(caught.value)
