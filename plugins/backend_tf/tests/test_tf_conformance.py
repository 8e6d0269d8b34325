"""The kernel's backend conformance suite (``tritium.testing.BackendConformance``) run on TensorFlow models:
SavedModels with and without a config, every kind of tensor the kit generates, and a GraphDef."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from tritium_backend_tf import TensorFlowBackend

from tritium import DataType
from tritium.testing import BackendConformance
from tritium.testing.strategies import requests_for

SIMPLE_CONFIG = """
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] },
        { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] },
         { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]
"""

GRAPHDEF_CONFIG = 'platform: "tensorflow_graphdef"\n' + SIMPLE_CONFIG


def _signature(name: str) -> str:
    return f'parameters {{ key: "TF_SIGNATURE_DEF" value {{ string_value: "{name}" }} }}'


# (built model attribute, config text or "" for none, platform)
MODELS = {
    "simple": ("simple", SIMPLE_CONFIG, "tensorflow_savedmodel"),
    "autocomplete_fp32": ("fp32_add_sub", "", "tensorflow_savedmodel"),
    "nobatch": ("identities_nobatch", "", "tensorflow_savedmodel"),
    "strings": ("identities", _signature("identity_bytes"), "tensorflow_savedmodel"),
    "fp16": ("identities", _signature("identity_fp16"), "tensorflow_savedmodel"),
    "bool": ("identities", _signature("identity_bool"), "tensorflow_savedmodel"),
    "uint64": ("identities", _signature("identity_uint64"), "tensorflow_savedmodel"),
    "variable": ("variable", "", "tensorflow_savedmodel"),
    "graphdef": ("graphdef", GRAPHDEF_CONFIG, "tensorflow_graphdef"),
}


class TestTensorFlowBackendConformance(BackendConformance):
    """Each parameter is one kind of model the backend serves."""

    @pytest.fixture
    def backend(self):
        return TensorFlowBackend({})

    @pytest.fixture(params=sorted(MODELS))
    def model_source_and_config(self, request, tf_models, model_link, config_from):
        attribute, text, platform = MODELS[request.param]
        source = model_link(request.param, getattr(tf_models, attribute))
        config = config_from(text)
        # what the kernel sets before auto-complete: the backend and platform resolved from the model file
        config.backend = "tensorflow"
        config.platform = platform
        return source, config

    @pytest.fixture
    def request_strategy(self, loaded_config):
        """The kit's requests, with FP16 elements drawn as small integers (the kit's width-16 floats filter
        too much)."""
        fp16 = {
            t.name: st.integers(-2048, 2048).map(float)
            for t in loaded_config.input
            if DataType.from_config_enum(t.data_type) is DataType.FP16
        }
        return requests_for(loaded_config, include_optional=False, elements=fp16)
