"""BLS on the server side: a model's ``InferenceRequest(...).exec()`` answered through the kernel's model
client (``ModelSource.models``), whichever mode the model runs in.

Requests and responses are the runner's wire values: a request ``(model_name, model_version, request_id,
correlation_id, flags, timeout_us, parameters, requested_output_names, inputs)``, a response ``(outputs,
parameters, error)`` with ``error`` None or ``(code name, message)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

import tritium
from tritium import DataType, TritiumError
from tritium_backend_python._channel import unpack_array
from tritium_backend_python._convert import wire_tensor

WireResponse = tuple[Any, dict[str, Any], "tuple[str, str] | None"]

NO_CLIENT = (
    "UNSUPPORTED",
    "BLS is not available: this Tritium kernel gives backends no model client (ModelSource.models)",
)


def _kernel_request(wire: tuple[Any, ...]) -> tritium.InferenceRequest:
    model_name, model_version, request_id, correlation_id, flags, timeout_us, parameters, requested, inputs = wire
    tensors: dict[str, tritium.Tensor] = {}
    for name, datatype, packed in inputs:
        array = unpack_array(packed)
        kind = DataType(datatype)
        if kind is DataType.BF16 and array.dtype.kind == "u":
            array = array.view(kind.numpy_dtype)
        elif kind is not DataType.BYTES and array.dtype != kind.numpy_dtype:
            array = np.asarray(array, dtype=kind.numpy_dtype)
        tensors[name] = tritium.Tensor(name, kind, array)
    return tritium.InferenceRequest(
        model_name=model_name,
        model_version=int(model_version),
        id=request_id,
        inputs=tensors,
        requested_outputs=[tritium.RequestedOutput(n) for n in requested],
        parameters=dict(parameters),
        timeout_us=int(timeout_us),
        sequence_id=correlation_id or 0,
        sequence_start=bool(flags & 1),
        sequence_end=bool(flags & 2),
    )


def _wire_response(response: tritium.InferenceResponse) -> WireResponse:
    outputs = [wire_tensor(t.name, t.datatype, np.asarray(t.data)) for t in response.outputs]
    return outputs, dict(response.parameters), None


def _wire_error(exc: BaseException) -> WireResponse:
    if isinstance(exc, TritiumError):
        return (), {}, (exc.code.value, exc.message)
    return (), {}, ("INTERNAL", f"{type(exc).__name__}: {exc}")


class BlsBridge:
    """Answers BLS calls of one model instance with the kernel's model client (None: BLS unavailable)."""

    def __init__(self, models: Any) -> None:
        self.models = models

    def infer(self, wire: tuple[Any, ...]) -> WireResponse:
        if self.models is None:
            return (), {}, NO_CLIENT
        try:
            response = self.models.infer_blocking(_kernel_request(wire))
        except BaseException as exc:
            return _wire_error(exc)
        return _wire_response(response)

    def stream(self, wire: tuple[Any, ...]) -> Iterator[tuple[WireResponse, bool]]:
        """``(response, final)`` pairs as the model streams them, then an empty final response (what
        Triton's decoupled BLS iterator ends with)."""
        if self.models is None:
            yield ((), {}, NO_CLIENT), True
            return
        try:
            for response in self.models.infer_stream_blocking(_kernel_request(wire)):
                if response.outputs or not response.final:
                    yield _wire_response(response), False
        except BaseException as exc:
            yield _wire_error(exc), True
            return
        yield ((), {}, None), True

    def ready(self, model_name: str, model_version: str) -> bool:
        if self.models is None:
            return False
        try:
            return bool(self.models.is_ready(model_name, model_version.strip()))
        except BaseException:
            return False
