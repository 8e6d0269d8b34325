"""The kernel's backend conformance suite run on the TensorRT backend over the TensorRT test double.

TensorRT serves GPU instances only, so the kit places instances on the GPU (``placement_kind``).
"""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from tritium import DataType
from tritium.testing import BackendConformance
from tritium.testing.strategies import requests_for


class TestTensorRTBackendConformance(BackendConformance):
    placement_kind = "GPU"

    @pytest.fixture
    def request_strategy(self, loaded_config):
        """The kit's requests, FP16 elements drawn as small integers (the kit's width-16 floats are filtered
        too much for a health check; the ONNX backend's suite does the same)."""
        fp16 = {
            t.name: st.integers(-2048, 2048).map(float)
            for t in loaded_config.input
            if DataType.from_config_enum(t.data_type) is DataType.FP16
        }
        return requests_for(loaded_config, include_optional=False, elements=fp16)

    @pytest.fixture
    def backend(self, kit):
        backend, _, _ = kit.make_backend()
        return backend

    @pytest.fixture(params=["add_sub_int32", "identity_fp16_dynamic", "nobatch", "bf16", "bool", "graphs"])
    def model_source_and_config(self, request, kit, tmp_path):
        kind = request.param
        text = ""
        if kind == "add_sub_int32":
            spec = kit.add_sub_spec("INT32", width=16)
        elif kind == "identity_fp16_dynamic":
            spec = kit.identity_spec("HALF")
            text = 'input [ { name: "INPUT0" dims: [ 6 ] } ]'
        elif kind == "nobatch":
            spec = kit.add_sub_spec(batch=False)
            text = 'max_batch_size: 0 input [ { name: "INPUT0" dims: [2, 4] }, { name: "INPUT1" dims: [2, 4] } ]'
        elif kind == "bf16":
            spec = kit.identity_spec("BF16", shape=[-1, 3], profiles=[{"INPUT0": [[1, 3], [2, 3], [8, 3]]}])
        elif kind == "bool":
            spec = kit.identity_spec("BOOL", shape=[-1, 5], profiles=[{"INPUT0": [[1, 5], [2, 5], [8, 5]]}])
        else:
            spec = kit.add_sub_spec("FLOAT")
            text = "optimization { cuda { graphs: true } }"
        source = kit.write_plan(tmp_path, kind, spec)
        config = kit.parse_config(text)
        config.backend, config.platform = "tensorrt", "tensorrt_plan"
        return source, config
