"""config.pbtxt parsing: Triton's documented examples, syntax Triton accepts, and syntax errors naming the
file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from tritium import ConfigError
from tritium.config import (
    ModelConfig,
    ModelConfigError,
    autofill_backend_fields,
    format_model_config,
    load_model_config,
    normalize_model_config,
    parse_model_config,
)

DATA = Path(__file__).parent / "data" / "configs"
DOC_CONFIGS = sorted((DATA / "docs").glob("*.pbtxt"))
ALL_CONFIGS = DOC_CONFIGS + sorted((DATA / "triton251").glob("*.pbtxt"))


def _model_name(path: Path, config: ModelConfig) -> str:
    """The directory name a config would live in: its own name, else the file name."""
    if config.name:
        return config.name
    return path.stem if path.parent.name == "docs" else path.parent.name


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(DATA)) for p in paths]


def test_the_transcribed_examples_are_there() -> None:
    assert len(DOC_CONFIGS) >= 70


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=_ids(ALL_CONFIGS))
def test_every_example_parses_and_normalizes(path: Path) -> None:
    config = load_model_config(path)
    name = _model_name(path, config)
    config = autofill_backend_fields(config, model_name=name)
    normalized = normalize_model_config(config, model_name=name, source=str(path), gpu_count=4)
    assert normalized.name == name
    assert normalized.HasField("version_policy")
    if normalized.platform != "ensemble":
        assert normalized.instance_group and all(g.count >= 1 and g.name for g in normalized.instance_group)


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=_ids(ALL_CONFIGS))
def test_every_example_loads_without_gpus_with_soft_placement(path: Path) -> None:
    config = load_model_config(path)
    name = _model_name(path, config)
    config = autofill_backend_fields(config, model_name=name)
    normalize_model_config(config, model_name=name, source=str(path), gpu_count=0, allow_soft_placement=True)


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=_ids(ALL_CONFIGS))
def test_text_format_round_trip(path: Path) -> None:
    config = load_model_config(path)
    assert parse_model_config(format_model_config(config)) == config


@pytest.mark.parametrize(
    "text",
    [
        'input [ { name: "a", data_type: TYPE_FP32, dims: [ 1, -1 ] } ]',  # commas as separators
        'input { name: "a"; data_type: TYPE_FP32; dims: 1 dims: -1 }',  # semicolons, repeated scalars
        'input < name: "a" data_type: TYPE_FP32 dims: [1, -1] >',  # angle brackets
        'input: { name: "a" data_type: 11 dims: [1, -1] }',  # colon before a block, enum by number
        "input { name: 'a' data_type: TYPE_FP32 dims: [0x1, -1] }  # comment",  # single quotes, hex, comment
        'input { name: "a" "" data_type: TYPE_FP32 dims: [1, -1] }',  # adjacent strings concatenate
    ],
)
def test_syntax_triton_accepts(text: str) -> None:
    config = parse_model_config(text)
    assert config.input[0].name == "a"
    assert list(config.input[0].dims) == [1, -1]
    assert config.input[0].data_type == ModelConfig().input.add(data_type="TYPE_FP32").data_type


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ('backend: "python"\ninput [ { name: "IN" data_typ: TYPE_FP32 } ]', 2, 22, 'no field named "data_typ"'),
        ("max_batch_size: 1\nmax_batch_size: 2", 2, 17, '"max_batch_size"'),
        ("dynamic_batching { }\nsequence_batching { }", 2, 1, 'another member of oneof "scheduling_choice"'),
        ('input { name: "x" data_type: TYPE_FLOAT }', 1, 30, "no value named TYPE_FLOAT"),
        ("max_batch_size: -", 1, 17, "Couldn't parse integer"),
        ("input { dims: [ 99999999999999999999 ] }", 1, 17, "out of range"),
        ("max_batch_size: 4\ninput {", 2, 7, 'Expected "}"'),
    ],
)
def test_syntax_errors_name_file_line_and_column(text: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(ModelConfigError) as caught:
        parse_model_config(text, "models/m/config.pbtxt")
    error = caught.value
    assert isinstance(error, ConfigError)
    assert (error.source, error.line, error.column) == ("models/m/config.pbtxt", line, column)
    assert str(error).startswith(f"models/m/config.pbtxt:{line}:{column}: ")
    assert fragment in str(error)


def test_parse_uses_a_default_source_name() -> None:
    with pytest.raises(ConfigError, match=r"^<string>:1:1: "):
        parse_model_config("nonsense")


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.pbtxt"
    path.write_text('name: "m"\nbackend: "python"\nmax_batch_size: x\n')
    with pytest.raises(ConfigError, match=rf"^{path}:3:17: "):
        load_model_config(path)


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "config.pbtxt"
    with pytest.raises(ConfigError, match=rf"^{path}: failed to read text proto: "):
        load_model_config(path)


def test_load_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "config.pbtxt"
    path.write_bytes(b'name: "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_model_config(path)


def test_broken_doc_snippet_fails_like_in_triton() -> None:
    # onnxruntime_backend README, line 147, as printed: one closing brace too early (see docs/ transcription).
    text = """
optimization { execution_accelerators {
  gpu_execution_accelerator : [ {
    name : "tensorrt"
    parameters { key: "precision_mode" value: "FP16" }
    parameters { key: "max_workspace_size_bytes" value: "1073741824" }}
    parameters { key: "trt_engine_cache_enable" value: "1" }}
  ]
}}
"""
    with pytest.raises(ConfigError, match=r"^<string>:7:5: "):
        parse_model_config(text)
