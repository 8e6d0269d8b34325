"""The kernel's backend conformance suite (``tritium.testing.BackendConformance``) on Python models, in both
execution modes: Triton's add_sub example, an auto-completed identity model (FP32, BYTES, BF16) and Triton's
decoupled repeat example."""

from __future__ import annotations

import pytest
from tritium_backend_python import PythonBackend

from tritium.testing import BackendConformance

KINDS = [
    ("add_sub", {}),
    ("add_sub", {"TRITIUM_EXECUTION_MODE": "in-process"}),
    ("identity_auto", {}),
    ("identity_auto", {"DATATYPE": "TYPE_STRING"}),
    ("identity_auto", {"DATATYPE": "TYPE_BF16", "TRITIUM_EXECUTION_MODE": "in-process"}),
    ("identity_auto", {"DATATYPE": "TYPE_BF16"}),
    ("repeat", {}),
    ("repeat", {"TRITIUM_EXECUTION_MODE": "in-process"}),
]


class TestPythonBackendConformance(BackendConformance):
    concurrent_rounds = 5

    @pytest.fixture
    def backend(self):
        return PythonBackend({})

    @pytest.fixture(params=KINDS, ids=[f"{name}-{'-'.join(p.values()) or 'isolated'}" for name, p in KINDS])
    def model_source_and_config(self, request, model_copy):
        name, parameters = request.param
        return model_copy(name, **parameters)
