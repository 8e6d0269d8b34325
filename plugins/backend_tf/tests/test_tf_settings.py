"""Backend settings (``--backend-config=tensorflow,...``), model parameters and the session config they make."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tritium_backend_tf._session import session_config
from tritium_backend_tf._settings import BackendSettings, ModelSettings, read_init_ops

from tritium import ConfigError, InstancePlacement


def test_backend_defaults_are_tritons():
    settings = BackendSettings.from_options({})
    assert settings.allow_soft_placement is True
    assert settings.gpu_memory_fraction == 0.0 and settings.allow_gpu_memory_growth is True
    assert settings.version == 2
    assert settings.default_max_batch_size == 4


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("False", False), ("1", True), ("off", False)])
def test_allow_soft_placement(raw, expected):
    assert BackendSettings.from_options({"allow-soft-placement": raw}).allow_soft_placement is expected


def test_gpu_memory_fraction_reserves_and_stops_growth():
    settings = BackendSettings.from_options({"gpu-memory-fraction": "0.25"})
    assert settings.gpu_memory_fraction == 0.25
    assert settings.allow_gpu_memory_growth is False


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"allow-soft-placement": "maybe"},
         "failed to convert 'maybe' to boolean for --backend-config=tensorflow,allow-soft-placement"),
        ({"gpu-memory-fraction": "1.5"}, "the fraction must be between 0 and 1"),
        ({"gpu-memory-fraction": "half"}, "failed to convert 'half' to number"),
        ({"version": "1"}, "only TensorFlow 2 is supported"),
        ({"version": "two"}, "failed to convert 'two' to integer"),
        ({"default-max-batch-size": "x"}, "default-max-batch-size"),
    ],
)
def test_bad_backend_settings_name_the_flag(options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BackendSettings.from_options(options)


def test_version_2_and_unknown_keys_are_accepted():
    settings = BackendSettings.from_options({"version": "2", "some-global-key": "x"})
    assert settings.version == 2


@given(st.dictionaries(st.sampled_from(["allow-soft-placement", "gpu-memory-fraction", "version",
                                        "default-max-batch-size", "other"]), st.text(max_size=12)))
def test_any_backend_options_parse_or_fail_cleanly(options):
    try:
        settings = BackendSettings.from_options(options)
    except ConfigError as exc:
        assert str(exc)
    else:
        assert 0.0 <= settings.gpu_memory_fraction <= 1.0
        assert settings.version == 2


def test_model_parameters(config_from):
    config = config_from("""
        name: "m"
        parameters { key: "TF_NUM_INTRA_THREADS" value { string_value: "2" } }
        parameters { key: "TF_NUM_INTER_THREADS" value { string_value: "3" } }
        parameters { key: "TF_USE_PER_SESSION_THREADS" value { string_value: "yes" } }
        parameters { key: "TF_GRAPH_TAG" value { string_value: "serve1" } }
        parameters { key: "TF_SIGNATURE_DEF" value { string_value: "serving2" } }
        parameters { key: "MAX_SESSION_SHARE_COUNT" value { string_value: "4" } }
        parameters { key: "TF_INIT_OPS_FILE" value { string_value: "init_ops.json" } }
        optimization { graph { level: 1 }
          execution_accelerators { gpu_execution_accelerator [ { name: "auto_mixed_precision" } ] } }
    """)
    settings = ModelSettings.from_config(config)
    assert settings == ModelSettings(
        intra_op_threads=2, inter_op_threads=3, use_per_session_threads=True, graph_tag="serve1",
        signature_def="serving2", max_session_share_count=4, init_ops_file="init_ops.json", graph_level=1,
        auto_mixed_precision=True,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('parameters { key: "TF_NUM_INTRA_THREADS" value { string_value: "-1" } }',
         "parameter 'TF_NUM_INTRA_THREADS' must be non-negative number for TensorFlow model 'm'"),
        ('parameters { key: "TF_NUM_INTER_THREADS" value { string_value: "many" } }',
         "failed to convert 'many' to integer for parameter 'TF_NUM_INTER_THREADS'"),
        ('parameters { key: "MAX_SESSION_SHARE_COUNT" value { string_value: "0" } }',
         "parameter 'MAX_SESSION_SHARE_COUNT' must be positive number for TensorFlow model 'm'"),
        ('optimization { execution_accelerators { cpu_execution_accelerator [ { name: "openvino" } ] } }',
         "CPU Execution Accelerator is not supported in TensorFlow backend"),
        ('optimization { execution_accelerators { gpu_execution_accelerator [ { name: "fast" } ] } }',
         "unknown Execution Accelerator 'fast' is requested"),
        ('optimization { execution_accelerators { gpu_execution_accelerator [ { name: "tensorrt" } ] } }',
         "TF-TRT"),
    ],
)
def test_bad_model_parameters(config_from, text, message):
    with pytest.raises(ConfigError) as error:
        ModelSettings.from_config(config_from('name: "m" ' + text))
    assert message in str(error.value)


def _placement(kind: str = "CPU") -> InstancePlacement:
    return InstancePlacement("i", kind, 0, "g", 0)


def test_session_config_for_a_cpu_instance():
    import tensorflow as tf

    settings = ModelSettings(intra_op_threads=2, inter_op_threads=1, use_per_session_threads=True, graph_level=-1)
    config = session_config(tf, BackendSettings(allow_soft_placement=False), settings, _placement())
    assert config.intra_op_parallelism_threads == 2
    assert config.inter_op_parallelism_threads == 1
    assert config.use_per_session_threads is True
    assert config.allow_soft_placement is False
    assert config.device_count["GPU"] == 0
    assert config.graph_options.optimizer_options.opt_level == -1


def test_session_config_for_a_gpu_instance():
    import tensorflow as tf

    backend = BackendSettings.from_options({"gpu-memory-fraction": "0.5"})
    config = session_config(tf, backend, ModelSettings(graph_level=2, auto_mixed_precision=True), _placement("GPU"))
    assert config.gpu_options.per_process_gpu_memory_fraction == 0.5
    assert config.gpu_options.allow_growth is False
    assert config.graph_options.optimizer_options.global_jit_level == 2
    assert config.graph_options.rewrite_options.auto_mixed_precision == 1
    assert "GPU" not in config.device_count
    grow = session_config(tf, BackendSettings(), ModelSettings(), _placement("GPU"))
    assert grow.gpu_options.allow_growth is True


def test_init_ops_file_prefers_the_version_folder(tmp_path, init_ops_json):
    version_dir = tmp_path / "1"
    version_dir.mkdir()
    init_ops_json(tmp_path, ["model_level"])
    assert read_init_ops("init_ops.json", version_dir=version_dir, model_dir=tmp_path) == ("model_level",)
    init_ops_json(version_dir, ["init", "init_2"])
    assert read_init_ops("init_ops.json", version_dir=version_dir, model_dir=tmp_path) == ("init", "init_2")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.json", None, "not found"),
        ("init_ops.json", "{not json", "unable to read TF_INIT_OPS_FILE"),
        ("init_ops.json", '{"init_ops": "init"}', 'must hold {"init_ops"'),
        ("../init_ops.json", None, "inside the model folder"),
        ("/etc/passwd", None, "inside the model folder"),
    ],
)
def test_bad_init_ops_file(tmp_path, name, content, message):
    version_dir = tmp_path / "1"
    version_dir.mkdir()
    if content is not None:
        (version_dir / name).write_text(content)
    with pytest.raises(ConfigError, match=message.replace("{", r"\{")):
        read_init_ops(name, version_dir=version_dir, model_dir=tmp_path)
