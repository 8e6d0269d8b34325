"""Errors of Python models: exceptions and TritonError in execute (per request, with Triton's codes), wrong
numbers of responses, broken model files, crashing and hanging stubs (reported, restarted, never a hang)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from tritium import Batch, ConfigError, DataType, InferenceRequest, StatusCode, Tensor, TritiumError

pytestmark = pytest.mark.timeout(120)

CONFIG = """
max_batch_size: 4
input [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "Y" data_type: TYPE_INT32 dims: [ 1 ] } ]
"""

ERRORS_MODEL = '''
import os
import time
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = int(pb_utils.get_input_tensor_by_name(request, "X").as_numpy().reshape(-1)[0])
            if x == 1:
                raise ValueError("x is one")
            if x == 2:
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError("x is two", pb_utils.TritonError.INVALID_ARG)))
                continue
            if x == 3:
                return responses  # one response too few
            if x == 4:
                os._exit(3)
            if x == 5:
                time.sleep(60)
            if x == 6:
                raise pb_utils.TritonError("x is six", pb_utils.TritonError.UNAVAILABLE)
            if x == 7:
                return "not a list"
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", np.array([[x * 10]], np.int32))]))
        return responses
'''

MODES = [pytest.param({}, id="isolated"), pytest.param({"TRITIUM_EXECUTION_MODE": "in-process"}, id="in-process")]


def batch(*values: int) -> Batch:
    requests = [
        InferenceRequest(model_name="m", inputs={"X": Tensor("X", DataType.INT32, np.array([[v]], np.int32))},
                         batch_size=1)
        for v in values
    ]
    inputs = {"X": np.concatenate([r.inputs["X"].data for r in requests])}
    return Batch(inputs, frozenset({"Y"}), requests, len(values))


def run(instance, *values: int):
    return instance.execute(batch(*values))


@pytest.mark.parametrize("parameters", MODES)
def test_errors_are_answered_with_their_messages_and_codes(model_from_source, load, parameters):
    _, instance = load(*model_from_source("errors", ERRORS_MODEL, CONFIG, **parameters))
    assert run(instance, 9)["Y"].tolist() == [[90]]
    cases = {
        1: (StatusCode.INTERNAL, "ValueError: x is one"),
        2: (StatusCode.INVALID_ARG, "x is two"),
        3: (StatusCode.INTERNAL, "execute returned 0 responses for 1 requests"),
        6: (StatusCode.UNAVAILABLE, "x is six"),
        7: (StatusCode.INTERNAL, "execute must return a list of InferenceResponse"),
    }
    for value, (code, message) in cases.items():
        with pytest.raises(TritiumError) as caught:
            run(instance, value)
        assert caught.value.code is code
        assert message in caught.value.message
    assert run(instance, 8)["Y"].tolist() == [[80]]  # the instance still serves


@pytest.mark.parametrize("parameters", MODES)
def test_a_batch_of_good_requests_is_concatenated(model_from_source, load, parameters):
    _, instance = load(*model_from_source("errors", ERRORS_MODEL, CONFIG, **parameters))
    assert run(instance, 8, 9, 10)["Y"].tolist() == [[80], [90], [100]]


def test_a_crashed_stub_fails_its_execution_and_is_restarted(model_from_source, load):
    _, instance = load(*model_from_source("errors", ERRORS_MODEL, CONFIG))
    first_pid = instance._stub.pid
    with pytest.raises(TritiumError) as caught:
        run(instance, 4)
    assert caught.value.code is StatusCode.INTERNAL
    assert "exited unexpectedly" in caught.value.message and "exit status 3" in caught.value.message
    assert run(instance, 8)["Y"].tolist() == [[80]]
    assert instance._stub.pid != first_pid


def test_a_stub_killed_between_executions_is_restarted(model_from_source, load):
    _, instance = load(*model_from_source("errors", ERRORS_MODEL, CONFIG))
    pid = instance._stub.pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the supervisor notices and restarts it on its own
        stub = instance._stub
        if stub is not None and stub.pid != pid and stub.alive():
            break
        time.sleep(0.05)
    assert run(instance, 8)["Y"].tolist() == [[80]]
    assert instance._stub.pid != pid


def test_a_hung_execution_times_out_and_the_stub_is_replaced(model_from_source, load):
    _, instance = load(*model_from_source("errors", ERRORS_MODEL, CONFIG, TRITIUM_EXECUTE_TIMEOUT_SECONDS="1"))
    started = time.monotonic()
    with pytest.raises(TritiumError) as caught:
        run(instance, 5)
    assert time.monotonic() - started < 20
    assert "took longer than 1 s" in caught.value.message
    assert run(instance, 8)["Y"].tolist() == [[80]]


@pytest.mark.parametrize("parameters", MODES)
def test_model_files_that_cannot_load_are_tritium_errors(model_from_source, backend, parameters):
    from tritium.config import normalize_model_config

    broken = {
        "syntax": "def broken(:\n",
        "no_class": "x = 1\n",
        "init_raises": (
            "class TritonPythonModel:\n    def initialize(self, args):\n        raise RuntimeError('nope')\n"
        ),
        "exits": "import sys\nsys.exit(4)\n",
    }
    for name, text in broken.items():
        source, config = model_from_source(name, text, CONFIG, **parameters)
        config = normalize_model_config(config, model_name=name, source=name)
        with pytest.raises((TritiumError, ConfigError)) as caught:
            backend.create_instance(source, config, _placement())
        assert name in str(caught.value) or "model" in str(caught.value)
    source, config = model_from_source("missing", "x = 1\n", CONFIG, **parameters)
    (source.model_file).unlink()
    with pytest.raises(ConfigError, match="not found"):
        backend.create_instance(source, normalize_model_config(config, model_name="missing", source="m"), _placement())


def test_bad_settings_are_config_errors(model_from_source, backend):
    source, config = model_from_source("m", ERRORS_MODEL, CONFIG, TRITIUM_EXECUTION_MODE="threads")
    with pytest.raises(ConfigError, match="TRITIUM_EXECUTION_MODE"):
        backend.create_instance(source, config, _placement())
    source, config = model_from_source("n", ERRORS_MODEL, CONFIG, EXECUTION_ENV_PATH="/nonexistent/env")
    with pytest.raises(ConfigError, match="does not exist"):
        backend.create_instance(source, config, _placement())


def _placement():
    from tritium import InstancePlacement

    return InstancePlacement(name="m_0", kind="CPU", device_id=0, group_name="m", index=0)
