"""A model instance running inside the server process (``TRITIUM_EXECUTION_MODE: in-process``).

The lowest latency (no process hop, inputs are the received arrays themselves), at the price of
isolation: the model shares the server's GIL, and a crash or ``sys.exit`` in model code takes the server
with it. ``EXECUTION_ENV_PATH`` is not available in this mode.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

import tritium
from tritium import DataType, StatusCode, TritiumError
from tritium_backend_python._bls import BlsBridge
from tritium_backend_python._convert import (
    batch_to_wire,
    error_from_wire,
    outputs_from_wire,
    request_to_wire,
    results_to_outputs,
)
from tritium_backend_python._runner import (
    ModelLoadError,
    ModelRunner,
    load_model_class,
    response_from_wire,
)
from tritium_backend_python._runner import (
    request_to_wire as bls_request_to_wire,
)

_log = logging.getLogger("tritium.backend.python")
_LEVELS = {"INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR, "VERBOSE": logging.DEBUG}


class InProcessRuntime:
    """``pb_utils``'s link to the server for in-process models: BLS through the kernel's model client."""

    def __init__(self, bridge: BlsBridge, label: str) -> None:
        self._bridge = bridge
        self._label = label

    def infer(self, request: pb_utils.InferenceRequest) -> pb_utils.InferenceResponse:
        return response_from_wire(self._bridge.infer(bls_request_to_wire(request)))

    def infer_stream(self, request: pb_utils.InferenceRequest) -> Iterator[pb_utils.InferenceResponse]:
        for wire, _final in self._bridge.stream(bls_request_to_wire(request)):
            yield response_from_wire(wire)

    def is_model_ready(self, model_name: str, model_version: str) -> bool:
        return self._bridge.ready(model_name, model_version)

    def log(self, level: str, message: str) -> None:
        _log.log(_LEVELS.get(level, logging.INFO), "%s: %s", self._label, message)


class InProcessInstance(tritium.ModelInstance):
    """One instance of a Python model, run by the server's own interpreter."""

    def __init__(
        self,
        *,
        label: str,
        model_file: Any,
        module_name: str,
        decoupled: bool,
        batching: bool,
        args: Mapping[str, str],
        input_types: Mapping[str, DataType],
        bridge: BlsBridge,
    ) -> None:
        self.label = label
        self._batching = batching
        self._input_types = input_types
        self._runtime = InProcessRuntime(bridge, label)
        self._closed = False
        token = pb_utils._bind_runtime(self._runtime)
        try:
            model_class = load_model_class(model_file, module_name)
            self._runner = ModelRunner(model_class, decoupled=decoupled)
            self._runner.initialize(dict(args))
        except ModelLoadError as exc:
            raise TritiumError(StatusCode.INTERNAL, f"{label}: {exc}") from None
        finally:
            if token is not None:
                pb_utils._unbind_runtime(token)
        if pb_utils._SLOT.process is None:
            # Threads a model starts do not inherit the context: give them this server's runtime.
            pb_utils._bind_runtime(self._runtime, process=True)

    def execute(self, batch: tritium.Batch) -> Mapping[str, np.ndarray[Any, Any]]:
        token = pb_utils._bind_runtime(self._runtime)
        try:
            results = self._runner.execute(batch_to_wire(batch, self._input_types))
        finally:
            if token is not None:
                pb_utils._unbind_runtime(token)
        return results_to_outputs(results, self._batching)

    def execute_decoupled(self, request: tritium.InferenceRequest, send: tritium.ResponseSender) -> None:
        done = threading.Event()
        lock = threading.Lock()
        failure: list[TritiumError] = []

        def emit(index: int, outputs: Any, final: bool, error: Any) -> None:
            with lock:
                if done.is_set():
                    return
                if error is not None:
                    failure.append(error_from_wire(*error))
                    done.set()
                    return
                send(outputs_from_wire(outputs) if outputs is not None else None, final)
                if final:
                    done.set()

        token = pb_utils._bind_runtime(self._runtime)
        try:
            error = self._runner.execute_decoupled([request_to_wire(request)], emit)
        finally:
            if token is not None:
                pb_utils._unbind_runtime(token)
        if error is not None:
            with lock:
                if not done.is_set():
                    done.set()
                    raise error_from_wire(*error)
        done.wait()
        if failure:
            raise failure[0]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._runner.finalize()
        except Exception as exc:
            _log.error("%s: finalize failed: %s: %s", self.label, type(exc).__name__, exc)
        if pb_utils._SLOT.process is self._runtime:
            pb_utils._bind_runtime(None, process=True)
