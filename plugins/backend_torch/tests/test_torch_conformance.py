"""The kernel's backend conformance suite (``tritium.testing.BackendConformance``) on TorchScript models.

AOTInductor packages run the same suite in test_torch_aoti.py (they share one compiled package per module).
"""

from __future__ import annotations

import numpy as np
import pytest
from tritium_backend_torch import TorchBackend

from tritium import DataType, Tensor
from tritium.testing import BackendConformance
from tritium.testing.strategies import requests_for

CONFIGS = {
    # Triton's simple, <name>__<index> names, batching
    "add_sub": ("add_sub", """
        max_batch_size: 8
        input [ { name: "INPUT__0" data_type: TYPE_INT32 dims: [ 16 ] },
                { name: "INPUT__1" data_type: TYPE_INT32 dims: [ 16 ] } ]
        output [ { name: "OUTPUT__0" data_type: TYPE_INT32 dims: [ 16 ] },
                 { name: "OUTPUT__1" data_type: TYPE_INT32 dims: [ 16 ] } ]
    """),
    # inputs named after forward's arguments, listed in another order; outputs in config order; no batching
    "forward_names": ("add_sub", """
        input [ { name: "b" data_type: TYPE_FP32 dims: [ 2, 3 ] },
                { name: "a" data_type: TYPE_FP32 dims: [ 2, 3 ] } ]
        output [ { name: "SUM" data_type: TYPE_FP32 dims: [ 2, 3 ] },
                 { name: "DIFFERENCE" data_type: TYPE_FP32 dims: [ 2, 3 ] } ]
    """),
    # a single Dict[str, Tensor] argument
    "dict_input": ("dict_add", """
        max_batch_size: 4
        input [ { name: "a" data_type: TYPE_INT64 dims: [ 5 ] },
                { name: "b" data_type: TYPE_INT64 dims: [ 5 ] } ]
        output [ { name: "OUTPUT__0" data_type: TYPE_INT64 dims: [ 5 ] } ]
    """),
    # List[str] in and out, batched through a reshape to 1-D
    "strings": ("strings", """
        max_batch_size: 8
        input [ { name: "INPUT__0" data_type: TYPE_STRING dims: [ 1 ] reshape: { shape: [ ] } },
                { name: "INPUT__1" data_type: TYPE_INT64 dims: [ 1 ] } ]
        output [ { name: "OUTPUT__0" data_type: TYPE_STRING dims: [ 1 ] reshape: { shape: [ ] } },
                 { name: "OUTPUT__1" data_type: TYPE_INT64 dims: [ 1 ] reshape: { shape: [ ] } } ]
    """),
    # datatypes beyond Triton's libtorch list: bfloat16 and unsigned 16-bit
    "bf16": ("identity", """
        max_batch_size: 8
        input [ { name: "INPUT__0" data_type: TYPE_BF16 dims: [ 3 ] } ]
        output [ { name: "OUTPUT__0" data_type: TYPE_BF16 dims: [ 3 ] } ]
    """),
    "uint16_weight_sharing": ("identity", """
        max_batch_size: 2
        input [ { name: "INPUT__0" data_type: TYPE_UINT16 dims: [ 2, 2 ] } ]
        output [ { name: "OUTPUT__0" data_type: TYPE_UINT16 dims: [ 2, 2 ] } ]
        parameters { key: "ENABLE_WEIGHT_SHARING" value { string_value: "true" } }
        parameters { key: "INFERENCE_MODE" value { string_value: "false" } }
        parameters { key: "DISABLE_OPTIMIZED_EXECUTION" value { string_value: "true" } }
    """),
}


class TestTorchScriptConformance(BackendConformance):
    """Each parameter is one kind of TorchScript model the backend serves."""

    @pytest.fixture
    def backend(self):
        return TorchBackend({})

    @pytest.fixture(params=sorted(CONFIGS))
    def model_source_and_config(self, request, tmp_path, torch_models):
        kind, config = CONFIGS[request.param]
        return torch_models.write_model(tmp_path, request.param, kind, config)

    @pytest.fixture
    def request_strategy(self, loaded_config):
        """The kit's requests with UTF-8 strings (a TorchScript ``str`` holds text; other bytes are
        refused, see test_torch_execute.py)."""
        return requests_for(loaded_config, include_optional=False).map(_utf8_only)


def _utf8_only(request):
    for name, tensor in list(request.inputs.items()):
        if tensor.datatype is DataType.BYTES:
            data = np.empty(tensor.data.shape, dtype=object)
            data.reshape(-1)[:] = [b.decode("utf-8", "replace").encode() for b in tensor.data.reshape(-1)]
            request.inputs[name] = Tensor(name, DataType.BYTES, data)
    return request
