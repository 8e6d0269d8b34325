"""What a model sees of its requests (ids, sequence flags, parameters, requested outputs, timeouts), its
``initialize`` args, and its logs reaching the server's log, in both execution modes."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from tritium import Batch, DataType, InferenceRequest, RequestedOutput, Tensor

pytestmark = pytest.mark.timeout(120)

CONFIG = """
max_batch_size: 4
input [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "INFO" data_type: TYPE_STRING dims: [ 1 ] }, { name: "ARGS" data_type: TYPE_STRING dims: [ 1 ] } ]
"""

MODEL = '''
import json
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        self.args = args
        pb_utils.Logger.log_info("initialized " + args["model_name"])

    def execute(self, requests):
        responses = []
        for request in requests:
            info = {
                "id": request.request_id(),
                "correlation_id": request.correlation_id(),
                "flags": request.flags(),
                "parameters": json.loads(request.parameters()),
                "requested": request.requested_output_names(),
                "timeout": request.timeout(),
                "inputs": [t.name() for t in request.inputs()],
                "cancelled": request.is_cancelled(),
                "x": pb_utils.get_input_tensor_by_name(request, "X").as_numpy().tolist(),
            }
            pb_utils.Logger.log_warn("executing " + request.request_id())
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor("INFO", np.array([[json.dumps(info).encode()]], dtype=object)),
                pb_utils.Tensor("ARGS", np.array([[json.dumps(self.args).encode()]], dtype=object)),
            ]))
        return responses
'''

MODES = [pytest.param({}, id="isolated"), pytest.param({"TRITIUM_EXECUTION_MODE": "in-process"}, id="in-process")]


@pytest.mark.parametrize("parameters", MODES)
def test_the_model_sees_its_requests_and_args(model_from_source, load, parameters, caplog):
    caplog.set_level(logging.INFO, logger="tritium.backend.python")
    _config, instance = load(*model_from_source("intro", MODEL, CONFIG, **parameters))
    requests = [
        InferenceRequest(
            model_name="intro", id="r1", inputs={"X": Tensor("X", DataType.INT32, np.array([[7]], np.int32))},
            parameters={"temperature": 0.5, "mode": "fast", "n": 3, "flag": True}, sequence_id=42,
            sequence_start=True, timeout_us=1500, requested_outputs=[RequestedOutput("INFO")], batch_size=1,
        ),
        InferenceRequest(
            model_name="intro", id="r2", inputs={"X": Tensor("X", DataType.INT32, np.array([[8]], np.int32))},
            sequence_id="seq-a", sequence_end=True, batch_size=1,
        ),
    ]
    inputs = {"X": np.concatenate([r.inputs["X"].data for r in requests])}
    outputs = instance.execute(Batch(inputs, frozenset({"INFO", "ARGS"}), requests, 2))
    first, second = (json.loads(v) for v in outputs["INFO"].reshape(-1))
    assert first == {
        "id": "r1", "correlation_id": 42, "flags": 1, "parameters": {"temperature": 0.5, "mode": "fast", "n": 3,
        "flag": True}, "requested": ["INFO"], "timeout": 1500, "inputs": ["X"], "cancelled": False, "x": [[7]],
    }
    assert second["correlation_id"] == "seq-a" and second["flags"] == 2 and second["x"] == [[8]]
    assert second["requested"] == [] and second["parameters"] == {}
    args = json.loads(outputs["ARGS"].reshape(-1)[0])
    assert set(args) == {"model_config", "model_instance_kind", "model_instance_name", "model_instance_device_id",
                         "model_repository", "model_version", "model_name"}
    assert args["model_name"] == "intro" and args["model_version"] == "1" and args["model_instance_kind"] == "CPU"
    assert json.loads(args["model_config"])["max_batch_size"] == 4
    assert args["model_instance_name"] == "group_0"
    messages = [r.getMessage() for r in caplog.records if r.name == "tritium.backend.python"]
    assert any("initialized intro" in m for m in messages)
    assert any("executing r1" in m for m in messages)
