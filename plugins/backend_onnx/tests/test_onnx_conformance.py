"""The kernel's backend conformance suite (``tritium.testing.BackendConformance``) run on ONNX models."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st
from tritium_backend_onnx import OnnxBackend

from tritium import DataType, Tensor
from tritium.testing import BackendConformance
from tritium.testing.strategies import requests_for

SIMPLE_CONFIG = """
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] },
        { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] },
         { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] } ]
"""

NOBATCH_CONFIG = """
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 2, 3 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 2, 3 ] } ]
"""


class TestOnnxBackendConformance(BackendConformance):
    """Each parameter is one kind of model the backend serves."""

    @pytest.fixture
    def backend(self):
        return OnnxBackend({})

    @pytest.fixture(
        params=[
            "simple",
            "autocomplete_fp32",
            "nobatch",
            "strings",
            "fp16_two_tensors",
            "bf16",
            "external_weights",
        ]
    )
    def model_source_and_config(self, request, onnx_graphs, model_writer, config_from):
        source, config = self._model(request.param, onnx_graphs, model_writer, config_from)
        # what the kernel sets before auto-complete: the backend resolved from the model file
        config.backend = "onnxruntime"
        config.platform = "onnxruntime_onnx"
        return source, config

    @pytest.fixture
    def request_strategy(self, loaded_config):
        """The kit's requests, with two adjustments for ONNX: BYTES elements are UTF-8 (an ONNX string
        tensor holds text; other bytes are rejected, see test_onnx_execute.py), and FP16 elements are
        drawn as small integers (the kit's width-16 floats filter too much with several inputs)."""
        fp16 = {
            t.name: st.integers(-2048, 2048).map(float)
            for t in loaded_config.input
            if DataType.from_config_enum(t.data_type) is DataType.FP16
        }
        return requests_for(loaded_config, include_optional=False, elements=fp16).map(_utf8_only)

    @staticmethod
    def _model(kind, onnx_graphs, model_writer, config_from):
        g = onnx_graphs
        if kind == "simple":
            return model_writer(kind, g.add_sub()), config_from(SIMPLE_CONFIG)
        if kind == "autocomplete_fp32":
            return model_writer(kind, g.add_sub(g.TensorProto.FLOAT, ("batch", 4))), config_from()
        if kind == "nobatch":
            return model_writer(kind, g.identity(g.TensorProto.FLOAT, shape=(2, 3))), config_from(NOBATCH_CONFIG)
        if kind == "strings":
            return model_writer(kind, g.identity(g.TensorProto.STRING)), config_from("max_batch_size: 8")
        if kind == "fp16_two_tensors":
            return model_writer(kind, g.identity(g.TensorProto.FLOAT16, count=2)), config_from()
        if kind == "bf16":
            return model_writer(kind, g.identity(g.TensorProto.BFLOAT16)), config_from()
        weights = g.numpy_helper.from_array(np.arange(8, dtype=np.float32), "W")
        model = g.make_model(
            [g.helper.make_node("Mul", ["INPUT0", "W"], ["OUTPUT0"])],
            [("INPUT0", g.TensorProto.FLOAT, ["batch", 8])],
            [("OUTPUT0", g.TensorProto.FLOAT, ["batch", 8])],
            initializers=[weights],
        )
        return model_writer(kind, model, external_data=True), config_from()


def _utf8_only(request):
    for name, tensor in list(request.inputs.items()):
        if tensor.datatype is DataType.BYTES:
            data = np.empty(tensor.data.shape, dtype=object)
            data.reshape(-1)[:] = [b.decode("utf-8", "replace").encode() for b in tensor.data.reshape(-1)]
            request.inputs[name] = Tensor(name, DataType.BYTES, data)
    return request
