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
        3: (StatusCode.INTERNAL, "Number of InferenceResponse objects do not match the number of InferenceRequest "
            "objects. InferenceRequest(s) size is:1, and InferenceResponse(s) size is:0\n"),
        6: (StatusCode.UNAVAILABLE, "x is six"),
        7: (StatusCode.INTERNAL, "Expected a list in the execute return, found type '<class '"),
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


def test_a_model_import_that_hangs_is_bounded_by_the_stub_timeout(model_from_source, tmp_path):
    from tritium_backend_python import PythonBackend

    from tritium.config import normalize_model_config

    backend = PythonBackend({"stub-timeout-seconds": "1"})
    source, config = model_from_source("slow", "import time\ntime.sleep(60)\n", CONFIG)
    started = time.monotonic()
    with pytest.raises(TritiumError, match="took longer than 1 s"):
        backend.create_instance(source, normalize_model_config(config, model_name="slow", source="s"), _placement())
    assert time.monotonic() - started < 20


DECOUPLED_CONFIG = """
model_transaction_policy { decoupled: true }
input [ { name: "X" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "Y" data_type: TYPE_INT32 dims: [ 1 ] } ]
"""

DECOUPLED_MODEL = '''
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            x = int(pb_utils.get_input_tensor_by_name(request, "X").as_numpy()[0])
            sender = request.get_response_sender()
            sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("Y", np.array([x], np.int32))]))
            if x == 1:
                raise pb_utils.TritonError("x is one", pb_utils.TritonError.INVALID_ARG)
            if x == 2:
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError("x is two")))
                continue
            if x == 3:
                continue  # drops the sender without the final flag
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
'''


@pytest.mark.parametrize("parameters", MODES)
def test_decoupled_errors_end_the_stream(model_from_source, load, parameters):
    _, instance = load(*model_from_source("dec", DECOUPLED_MODEL, DECOUPLED_CONFIG, **parameters))

    def stream(x: int) -> tuple[list, BaseException | None]:
        sent: list = []
        request = InferenceRequest(model_name="dec", inputs={"X": Tensor("X", DataType.INT32, np.array([x], np.int32))})
        try:
            instance.execute_decoupled(request, lambda outputs, final: sent.append((outputs, final)))
        except TritiumError as exc:
            return sent, exc
        return sent, None

    sent, error = stream(5)
    assert error is None and [o["Y"].tolist() if o else None for o, _ in sent] == [[5], None]
    assert [final for _, final in sent] == [False, True]
    for x, (code, message) in {1: (StatusCode.INVALID_ARG, "x is one"), 2: (StatusCode.INTERNAL, "x is two"),
                               3: (StatusCode.INTERNAL, "without sending the final flag")}.items():
        sent, error = stream(x)
        assert [o["Y"].tolist() for o, _ in sent] == [[x]]
        assert error is not None and error.code is code and message in error.message
    sent, error = stream(6)  # the instance still serves
    assert error is None and sent[0][0]["Y"].tolist() == [6]


def test_unloading_during_a_hung_execution_does_not_hang(model_from_source, tmp_path):
    import threading

    from tritium_backend_python import PythonBackend

    from tritium.config import normalize_model_config

    backend = PythonBackend({"stub-timeout-seconds": "1"})
    source, config = model_from_source("hung", ERRORS_MODEL, CONFIG)
    instance = backend.create_instance(source, normalize_model_config(config, model_name="hung", source="h"),
                                       _placement())
    failures: list[BaseException] = []

    def execute() -> None:
        try:
            run(instance, 5)  # sleeps 60 s in the model
        except TritiumError as exc:
            failures.append(exc)

    worker = threading.Thread(target=execute)
    worker.start()
    time.sleep(0.5)
    started = time.monotonic()
    instance.close()
    worker.join(20)
    assert time.monotonic() - started < 20
    assert not worker.is_alive() and len(failures) == 1
    assert instance._stub is None
