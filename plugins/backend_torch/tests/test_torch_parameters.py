"""Triton's PyTorch parameters read from config.pbtxt."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tritium_backend_torch._parameters import TorchParameters

from tritium import ConfigError
from tritium.config import ModelConfig


def config_with(**params: str) -> ModelConfig:
    config = ModelConfig()
    for key, value in params.items():
        config.parameters[key].string_value = value
    return config


def test_defaults_match_triton():
    p = TorchParameters.from_config(ModelConfig())
    assert (p.optimized_execution, p.inference_mode, p.cudnn) == (True, True, True)
    assert (p.cache_cleaning, p.weight_sharing) == (False, False)
    assert (p.tensor_fuser, p.jit_profiling, p.jit_executor) == (None, None, None)
    assert (p.intra_op_threads, p.inter_op_threads) == (None, None)


def test_every_parameter():
    p = TorchParameters.from_config(config_with(
        DISABLE_OPTIMIZED_EXECUTION="true", INFERENCE_MODE="false", DISABLE_CUDNN="1", ENABLE_CACHE_CLEANING="on",
        ENABLE_WEIGHT_SHARING="TRUE", ENABLE_TENSOR_FUSER="false", ENABLE_JIT_PROFILING="0",
        ENABLE_JIT_EXECUTOR="off", INTRA_OP_THREAD_COUNT="2", INTER_OP_THREAD_COUNT=" 1 ", SOMETHING_ELSE="x",
    ))
    assert p == TorchParameters(
        optimized_execution=False, inference_mode=False, cudnn=False, cache_cleaning=True, weight_sharing=True,
        tensor_fuser=False, jit_profiling=False, jit_executor=False, intra_op_threads=2, inter_op_threads=1,
    )


def test_counts_of_zero_or_less_are_ignored():
    p = TorchParameters.from_config(config_with(INTRA_OP_THREAD_COUNT="0", INTER_OP_THREAD_COUNT="-3"))
    assert (p.intra_op_threads, p.inter_op_threads) == (None, None)


@pytest.mark.parametrize(("key", "value"), [("INFERENCE_MODE", "yes"), ("INTRA_OP_THREAD_COUNT", "two")])
def test_bad_values_name_the_parameter(key, value):
    with pytest.raises(ConfigError, match=key):
        TorchParameters.from_config(config_with(**{key: value}))


@given(st.text(max_size=8))
def test_any_boolean_text_parses_or_is_a_config_error(value):
    try:
        p = TorchParameters.from_config(config_with(ENABLE_CACHE_CLEANING=value))
    except ConfigError:
        assert value.strip().lower() not in ("true", "on", "1", "false", "off", "0")
    else:
        assert p.cache_cleaning is (value.strip().lower() in ("true", "on", "1"))
