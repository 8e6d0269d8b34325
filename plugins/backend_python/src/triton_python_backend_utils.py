"""``triton_python_backend_utils`` for Tritium: the module Triton's ``model.py`` files import as ``pb_utils``.

Tritium's Python backend ships this module under Triton's name, so ``import triton_python_backend_utils as
pb_utils`` in an unchanged ``model.py`` resolves to it, both in the stub process that runs a model instance
(isolated mode, the default) and in the server process (in-process mode). It depends on numpy only (and on
``ml_dtypes`` for BF16 when installed), because a model may run in an ``EXECUTION_ENV_PATH`` environment
without Tritium installed.

What a model sees follows Triton's python_backend API (see docs/backend-python.md for the list and every
difference). The server side of requests, response senders and BLS calls is bound by the backend through
:func:`_bind_runtime`; model code never calls it.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

# ------------------------------------------------------------------------------------------- constants
TRITONSERVER_REQUEST_FLAG_SEQUENCE_START = 1
TRITONSERVER_REQUEST_FLAG_SEQUENCE_END = 2
TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1
TRITONSERVER_REQUEST_RELEASE_ALL = 1
TRITONSERVER_REQUEST_RELEASE_RESCHEDULE = 2

# TRITONSERVER_DataType numbers (what Tensor.triton_dtype() returns) and their KServe wire names.
_WIRE_BY_NUMBER = {
    1: "BOOL", 2: "UINT8", 3: "UINT16", 4: "UINT32", 5: "UINT64", 6: "INT8", 7: "INT16", 8: "INT32",
    9: "INT64", 10: "FP16", 11: "FP32", 12: "FP64", 13: "BYTES", 14: "BF16",
}
_NUMBER_BY_WIRE = {wire: number for number, wire in _WIRE_BY_NUMBER.items()}
_NUMPY_BY_WIRE: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
    "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_,
}


def _bfloat16() -> Any:
    """``ml_dtypes.bfloat16`` when installed, else None (BF16 tensors then cannot become numpy arrays)."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    return ml_dtypes.bfloat16


def _numpy_type_of_wire(wire: str) -> Any:
    if wire == "BF16":
        bf16 = _bfloat16()
        if bf16 is None:
            raise TritonModelException("BF16 tensors need the 'ml_dtypes' package in the model's environment")
        return bf16
    return _NUMPY_BY_WIRE[wire]


_WIRE_BY_DTYPE: dict[Any, str] = {np.dtype(t): wire for wire, t in _NUMPY_BY_WIRE.items() if wire != "BYTES"}


def _wire_of_numpy(dtype: Any) -> str | None:
    """The wire datatype of a numpy dtype (object and bytes are BYTES), None when Triton has none."""
    found = _WIRE_BY_DTYPE.get(dtype)
    if found is not None:
        return found
    dtype = np.dtype(dtype)
    found = _WIRE_BY_DTYPE.get(dtype)
    if found is not None:
        return found
    if dtype.kind in ("O", "S"):
        return "BYTES"
    bf16 = _bfloat16()
    if bf16 is not None and dtype == np.dtype(bf16):
        return "BF16"
    return None


def triton_to_numpy_type(data_type: int) -> Any:
    """The numpy type of a TRITONSERVER_DataType number (13, BYTES, is ``np.object_``); None if unknown."""
    wire = _WIRE_BY_NUMBER.get(data_type)
    if wire is None:
        return None
    return _numpy_type_of_wire(wire)


def numpy_to_triton_type(data_type: Any) -> int | None:
    """The TRITONSERVER_DataType number of a numpy type or dtype; None when Triton has no such type."""
    try:
        wire = _wire_of_numpy(data_type)
    except TypeError:
        return None
    return None if wire is None else _NUMBER_BY_WIRE[wire]


def triton_string_to_numpy(triton_type_string: str) -> Any:
    """The numpy type of a config datatype name: ``"TYPE_FP32"`` -> ``np.float32``, ``"TYPE_STRING"`` ->
    ``np.object_``. Raises KeyError for unknown names, as Triton's table lookup does."""
    if triton_type_string == "TYPE_STRING":
        return np.object_
    if triton_type_string == "TYPE_BOOL":
        return bool
    if not triton_type_string.startswith("TYPE_") or triton_type_string[5:] not in _NUMBER_BY_WIRE:
        raise KeyError(triton_type_string)
    return _numpy_type_of_wire(triton_type_string[5:])


def serialize_byte_tensor(input_tensor: np.ndarray[Any, Any]) -> bytes | None:
    """Flatten a BYTES tensor (object or ``np.bytes_`` array) into Triton's wire form: each element as a
    4-byte little-endian length and its bytes, in C order. Elements that are not bytes are written as
    ``str(element)`` in UTF-8. Returns ``b""`` for an empty tensor and None for other dtypes."""
    if input_tensor.size == 0:
        return b""
    if input_tensor.dtype.kind not in ("O", "S"):
        return None
    parts: list[bytes] = []
    for element in input_tensor.reshape(-1, order="C"):
        data = _element_bytes(element)
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)


def deserialize_bytes_tensor(encoded_tensor: bytes | bytearray | memoryview) -> np.ndarray[Any, Any]:
    """The inverse of :func:`serialize_byte_tensor`: a 1-D object array of ``bytes``."""
    view = memoryview(encoded_tensor).cast("B")
    elements: list[bytes] = []
    offset = 0
    end = len(view)
    while offset < end:
        if offset + 4 > end:
            raise TritonModelException("truncated BYTES tensor: a length prefix is cut off")
        (length,) = struct.unpack_from("<I", view, offset)
        offset += 4
        if offset + length > end:
            raise TritonModelException("truncated BYTES tensor: an element is shorter than its length")
        elements.append(bytes(view[offset : offset + length]))
        offset += length
    array = np.empty(len(elements), dtype=object)
    array[:] = elements
    return array


def _element_bytes(element: Any) -> bytes:
    if isinstance(element, np.ndarray):  # a 0-d item of an object array
        element = element.item()
    if isinstance(element, bytes):
        return element
    if isinstance(element, bytearray | memoryview | np.bytes_):
        return bytes(element)
    return str(element).encode("utf-8")


# ---------------------------------------------------------------------------------------------- errors
class TritonError(Exception):
    """An error for one response (``InferenceResponse(error=...)``), with Triton's status codes. Raising it
    from ``execute`` fails the request(s) with its code and message."""

    UNKNOWN = 0
    INTERNAL = 1
    NOT_FOUND = 2
    INVALID_ARG = 3
    UNAVAILABLE = 4
    UNSUPPORTED = 5
    ALREADY_EXISTS = 6
    CANCELLED = 7

    _NAMES = ("UNKNOWN", "INTERNAL", "NOT_FOUND", "INVALID_ARG", "UNAVAILABLE", "UNSUPPORTED",
              "ALREADY_EXISTS", "CANCELLED")

    def __init__(self, message: str = "", code: int = 1) -> None:
        super().__init__(message)
        self._message = "" if message is None else str(message)
        self._code = int(code) if 0 <= int(code) < len(self._NAMES) else self.INTERNAL

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code

    def code_name(self) -> str:
        """The code's name (``"INVALID_ARG"``): how it crosses to the server."""
        return self._NAMES[self._code]

    def __str__(self) -> str:
        return self._message

    def __repr__(self) -> str:
        return f"TritonError({self._message!r}, {self.code_name()})"


class TritonModelException(Exception):
    """What ``pb_utils`` raises when a model misuses the API; a model may raise it too (for example from
    ``initialize``)."""

    def message(self) -> str:
        return str(self)


# ---------------------------------------------------------------------------------------------- tensors
class _CapsuleHolder:
    """Lets ``np.from_dlpack`` take a bare DLPack capsule (what ``torch.utils.dlpack.to_dlpack`` returns)."""

    def __init__(self, capsule: Any) -> None:
        self._capsule = capsule

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self._capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU


class Tensor:
    """A named tensor: a numpy array plus its Triton datatype. BYTES tensors are object arrays of ``bytes``.

    Input tensors of a request are read-only views of the data the server received; copy before writing.
    """

    __slots__ = ("_array", "_name", "_wire")

    def __init__(self, name: str, numpy_array: Any, triton_dtype: int | None = None) -> None:
        array = numpy_array if isinstance(numpy_array, np.ndarray) else np.asarray(numpy_array)
        if array.dtype.kind == "U" or (array.dtype.kind == "V" and _wire_of_numpy(array.dtype) is None):
            raise TritonModelException(
                "Tensor dtype used for numpy_array is not supported by Python backend. "
                "Please use np.object_ instead."
            )
        if triton_dtype is not None:
            wire = _WIRE_BY_NUMBER.get(int(triton_dtype))
            if wire is None:
                raise TritonModelException(f"unknown Triton datatype {triton_dtype}")
            wanted = np.dtype(_numpy_type_of_wire(wire))
            if wire != "BYTES" and array.dtype != wanted:
                array = array.view(wanted)
        else:
            found = _wire_of_numpy(array.dtype)
            if found is None:
                raise TritonModelException(f"numpy dtype {array.dtype} has no Triton datatype")
            wire = found
        if wire == "BYTES" and array.dtype.kind == "S":
            converted = np.empty(array.shape, dtype=object)
            converted.reshape(-1)[:] = [bytes(x) for x in array.reshape(-1)]
            array = converted
        self._name = str(name)
        self._array = array
        self._wire = wire

    @classmethod
    def _wrap(cls, name: str, wire: str, array: np.ndarray[Any, Any]) -> Tensor:
        """A tensor over an array the server already typed (no checks, no copy)."""
        tensor = cls.__new__(cls)
        tensor._name = name
        tensor._wire = wire
        tensor._array = array
        return tensor

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray[Any, Any]:
        return self._array

    def shape(self) -> list[int]:
        return list(self._array.shape)

    def triton_dtype(self) -> int:
        return _NUMBER_BY_WIRE[self._wire]

    def is_cpu(self) -> bool:
        """Always True: Tritium's Python backend keeps tensors in CPU memory."""
        return True

    def to_dlpack(self) -> Any:
        """A DLPack capsule viewing the data (not for BYTES tensors)."""
        if self._wire == "BYTES":
            raise TritonModelException("BYTES tensors cannot be shared through DLPack")
        return self._array.__dlpack__()

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        if self._wire == "BYTES":
            raise TritonModelException("BYTES tensors cannot be shared through DLPack")
        return self._array.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)

    @staticmethod
    def from_dlpack(name: str, dlpack_object: Any) -> Tensor:
        """A tensor from a DLPack capsule or any object with ``__dlpack__`` (a torch tensor, a CuPy array on
        the host, ...). GPU tensors are refused: this backend is CPU-only."""
        source = dlpack_object if hasattr(dlpack_object, "__dlpack__") else _CapsuleHolder(dlpack_object)
        try:
            array = np.from_dlpack(source)
        except (BufferError, RuntimeError, TypeError) as exc:
            raise TritonModelException(f"cannot import DLPack tensor '{name}': {exc}") from None
        return Tensor(name, array)

    def __repr__(self) -> str:
        return f"Tensor({self._name!r}, {self._wire}, shape={list(self._array.shape)})"


def _tensor_to_wire(tensor: Tensor) -> tuple[str, str, np.ndarray[Any, Any]]:
    """``(name, wire datatype, array)``; BYTES elements become ``bytes`` (``str`` elements UTF-8 encoded)."""
    array = tensor._array
    if tensor._wire == "BYTES":
        flat = array.reshape(-1)
        if not all(type(x) is bytes for x in flat):
            converted = np.empty(array.shape, dtype=object)
            converted.reshape(-1)[:] = [_element_bytes(x) for x in flat]
            array = converted
    return tensor._name, tensor._wire, array


# ------------------------------------------------------------------------------------ runtime binding
class _Runtime(Protocol):
    """What the backend provides to this module: BLS, readiness checks and logging."""

    def infer(self, request: InferenceRequest) -> InferenceResponse: ...

    def infer_stream(self, request: InferenceRequest) -> Iterator[InferenceResponse]: ...

    def is_model_ready(self, model_name: str, model_version: str) -> bool: ...

    def log(self, level: str, message: str) -> None: ...


class _RuntimeSlot:
    """The runtime of this process (a stub process serves one model instance), overridable per thread of
    execution through a context variable (in-process mode, where several models share the module)."""

    def __init__(self) -> None:
        self.process: _Runtime | None = None
        self.current: contextvars.ContextVar[_Runtime | None] = contextvars.ContextVar(
            "triton_python_backend_runtime", default=None
        )

    def get(self) -> _Runtime:
        runtime = self.current.get() or self.process
        if runtime is None:
            raise TritonModelException("this call is only available inside a model served by the Python backend")
        return runtime


_SLOT = _RuntimeSlot()


def _bind_runtime(runtime: _Runtime | None, *, process: bool = False) -> contextvars.Token[Any] | None:
    """Bind the backend's runtime: for the whole process, or for the current context (returns its token)."""
    if process:
        _SLOT.process = runtime
        return None
    return _SLOT.current.set(runtime)


def _unbind_runtime(token: contextvars.Token[Any]) -> None:
    _SLOT.current.reset(token)


# ------------------------------------------------------------------------------------------- requests
class InferenceResponseSender:
    """Sends the responses of one request of a decoupled model (``request.get_response_sender()``)."""

    def __init__(self, send: Callable[[InferenceResponse | None, int], None]) -> None:
        self._send = send
        self._closed = False
        self._lock = threading.Lock()

    def send(self, response: InferenceResponse | None = None, flags: int = 0) -> None:
        """Send ``response`` (or nothing, with ``flags=TRITONSERVER_RESPONSE_COMPLETE_FINAL`` only); the
        final flag closes the sender."""
        if response is not None and not isinstance(response, InferenceResponse):
            raise TritonModelException("response must be an InferenceResponse or None")
        final = bool(flags & TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        if response is None and not final:
            raise TritonModelException(
                "Inference Response object must be provided when the response flags is set to zero"
            )
        with self._lock:
            if self._closed:
                raise TritonModelException("Unable to send response. Response sender has been closed.")
            if final:
                self._closed = True
        self._send(response, flags)

    def is_cancelled(self) -> bool:
        """False: Tritium does not pass client cancellation on to Python models yet."""
        return False

    def _is_closed(self) -> bool:
        return self._closed


class InferenceRequest:
    """A request: the ones ``execute`` receives, and the ones a model builds for BLS calls (``exec``)."""

    def __init__(
        self,
        model_name: str = "",
        inputs: Sequence[Tensor] | None = None,
        requested_output_names: Sequence[str] | None = None,
        request_id: str = "",
        correlation_id: int | str = 0,
        model_version: int = -1,
        flags: int = 0,
        timeout: int = 0,
        preferred_memory: Any = None,
        trace: Any = None,
        parameters: Mapping[str, Any] | str | None = None,
    ) -> None:
        if not isinstance(model_name, str):
            raise TritonModelException("model_name must be a string")
        self._model_name = model_name
        self._inputs = list(inputs or [])
        for tensor in self._inputs:
            if not isinstance(tensor, Tensor):
                raise TritonModelException("inputs must be a list of pb_utils.Tensor")
        self._requested_output_names = [str(n) for n in (requested_output_names or [])]
        self._request_id = str(request_id)
        self._correlation_id = correlation_id
        self._model_version = int(model_version)
        self._flags = int(flags)
        self._timeout = int(timeout)
        self._trace = trace
        if parameters is None:
            self._parameters: dict[str, Any] = {}
        elif isinstance(parameters, str):
            decoded = json.loads(parameters) if parameters else {}
            if not isinstance(decoded, dict):
                raise TritonModelException("parameters must be a JSON object")
            self._parameters = decoded
        else:
            self._parameters = dict(parameters)
        for key, value in self._parameters.items():
            if not isinstance(key, str) or not isinstance(value, bool | int | str | float):
                raise TritonModelException("request parameters must map strings to bool, int, float or str")
        self._response_sender: InferenceResponseSender | None = None
        self._release_flags = TRITONSERVER_REQUEST_RELEASE_ALL

    def inputs(self) -> list[Tensor]:
        return self._inputs

    def request_id(self) -> str:
        return self._request_id

    def correlation_id(self) -> int | str:
        return self._correlation_id

    def model_name(self) -> str:
        return self._model_name

    def model_version(self) -> int:
        return self._model_version

    def flags(self) -> int:
        return self._flags

    def timeout(self) -> int:
        """The request's timeout in microseconds (0: none)."""
        return self._timeout

    def parameters(self) -> str:
        """The request's custom parameters as a JSON object text, as Triton gives them."""
        return json.dumps(self._parameters)

    def requested_output_names(self) -> list[str]:
        return list(self._requested_output_names)

    def trace(self) -> Any:
        return self._trace

    def is_cancelled(self) -> bool:
        """False: Tritium does not pass client cancellation on to Python models yet."""
        return False

    def get_response_sender(self) -> InferenceResponseSender:
        """The sender of this request's responses (decoupled models)."""
        if self._response_sender is None:
            raise TritonModelException("this request has no response sender (only requests given to execute do)")
        return self._response_sender

    def set_release_flags(self, flags: int) -> None:
        if flags & TRITONSERVER_REQUEST_RELEASE_RESCHEDULE:
            raise TritonModelException("request rescheduling is not supported by Tritium's Python backend")
        self._release_flags = flags

    # ---------------------------------------------------------------------------------------- BLS
    def exec(self, decoupled: bool = False) -> Any:
        """Run this request on the model it names (any model the server serves) and wait: an
        :class:`InferenceResponse` (check ``has_error()``), or with ``decoupled=True`` an iterator of the
        responses as the model streams them."""
        self._check_bls()
        runtime = _SLOT.get()
        if decoupled:
            return runtime.infer_stream(self)
        return runtime.infer(self)

    async def async_exec(self, decoupled: bool = False) -> Any:
        """:meth:`exec` without blocking the event loop of an ``async def execute``."""
        self._check_bls()
        runtime = _SLOT.get()
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        if decoupled:
            stream = await loop.run_in_executor(None, context.run, runtime.infer_stream, self)
            return _AsyncStream(stream, loop, context)
        return await loop.run_in_executor(None, context.run, runtime.infer, self)

    def _check_bls(self) -> None:
        if not self._model_name:
            raise TritonModelException("a BLS request needs a model_name")

    def _parameters_dict(self) -> dict[str, Any]:
        return self._parameters

    def __repr__(self) -> str:
        return f"InferenceRequest(model_name={self._model_name!r}, request_id={self._request_id!r})"


class _AsyncStream:
    """The responses of ``async_exec(decoupled=True)``: ``async for`` takes each as it arrives without blocking
    the event loop; a plain ``for`` works too (blocking, like ``exec(decoupled=True)``'s iterator)."""

    def __init__(
        self, stream: Iterator[InferenceResponse], loop: asyncio.AbstractEventLoop, context: contextvars.Context
    ) -> None:
        self._stream = stream
        self._loop = loop
        self._context = context

    def __iter__(self) -> Iterator[InferenceResponse]:
        return self._stream

    def __aiter__(self) -> _AsyncStream:
        return self

    async def __anext__(self) -> InferenceResponse:
        item = await self._loop.run_in_executor(None, self._context.run, self._next)
        if item is None:
            raise StopAsyncIteration
        return item

    def _next(self) -> InferenceResponse | None:
        return next(self._stream, None)


class InferenceResponse:
    """A response: output tensors, or an error for its request."""

    def __init__(
        self,
        output_tensors: Sequence[Tensor] | None = None,
        error: TritonError | None = None,
        parameters: Mapping[str, Any] | str | None = None,
    ) -> None:
        if output_tensors is None:
            output_tensors = []
        if not isinstance(output_tensors, list | tuple):
            raise TritonModelException('"output_tensors" must be a list.')
        for tensor in output_tensors:
            if not isinstance(tensor, Tensor):
                raise TritonModelException('"output_tensors" must be a list of pb_utils.Tensor')
        if error is not None and not isinstance(error, TritonError):
            error = TritonError(str(error))
        self._output_tensors = list(output_tensors)
        self._error = error
        if parameters is None:
            self._parameters: dict[str, Any] = {}
        elif isinstance(parameters, str):
            self._parameters = json.loads(parameters) if parameters else {}
        else:
            self._parameters = dict(parameters)

    def output_tensors(self) -> list[Tensor]:
        return self._output_tensors

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> TritonError | None:
        return self._error

    def parameters(self) -> str:
        return json.dumps(self._parameters)

    def _parameters_dict(self) -> dict[str, Any]:
        return self._parameters

    def __repr__(self) -> str:
        names = [t.name() for t in self._output_tensors]
        return f"InferenceResponse(outputs={names}, error={self._error!r})"


# ---------------------------------------------------------------------------------------------- helpers
def get_input_tensor_by_name(inference_request: InferenceRequest, name: str) -> Tensor | None:
    """The request's input tensor called ``name``, None when the request has none (an optional input)."""
    for tensor in inference_request.inputs():
        if tensor.name() == name:
            return tensor
    return None


def get_output_tensor_by_name(inference_response: InferenceResponse, name: str) -> Tensor | None:
    """The response's output tensor called ``name`` (a BLS response), or None."""
    for tensor in inference_response.output_tensors():
        if tensor.name() == name:
            return tensor
    return None


def get_input_config_by_name(model_config: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The ``input`` entry of a model config dict (``json.loads(args["model_config"])``) named ``name``."""
    for entry in model_config.get("input", []):
        if entry.get("name") == name:
            return dict(entry)
    return None


def get_output_config_by_name(model_config: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The ``output`` entry of a model config dict named ``name``, or None."""
    for entry in model_config.get("output", []):
        if entry.get("name") == name:
            return dict(entry)
    return None


def using_decoupled_model_transaction_policy(model_config: Mapping[str, Any]) -> bool:
    """Whether the config sets ``model_transaction_policy { decoupled: true }``."""
    policy = model_config.get("model_transaction_policy") or {}
    return bool(policy.get("decoupled", False))


def is_model_ready(model_name: str, model_version: str = "") -> bool:
    """Whether the server has ``model_name`` (at ``model_version``, or its newest version) ready."""
    return _SLOT.get().is_model_ready(model_name, str(model_version))


def load_model(model_name: str, config: str = "", files: Mapping[str, bytes] | None = None) -> None:
    """Not supported by Tritium: load models with the repository API (explicit model control)."""
    raise TritonModelException("load_model is not supported by Tritium's Python backend; use the repository API")


def unload_model(model_name: str, unload_dependents: bool = False) -> None:
    """Not supported by Tritium: unload models with the repository API (explicit model control)."""
    raise TritonModelException("unload_model is not supported by Tritium's Python backend; use the repository API")


# ----------------------------------------------------------------------------------------------- logging
class LogLevel:
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    VERBOSE = "VERBOSE"


class Logger:
    """Writes to the server's log (logger ``tritium.backend.python``), as Triton's ``pb_utils.Logger``."""

    INFO = LogLevel.INFO
    WARNING = LogLevel.WARNING
    ERROR = LogLevel.ERROR
    VERBOSE = LogLevel.VERBOSE

    @staticmethod
    def log(message: str, level: str = LogLevel.INFO) -> None:
        runtime = _SLOT.current.get() or _SLOT.process
        if runtime is None:
            import sys

            print(f"[{level}] {message}", file=sys.stderr)
            return
        runtime.log(str(level), str(message))

    @staticmethod
    def log_info(message: str) -> None:
        Logger.log(message, LogLevel.INFO)

    @staticmethod
    def log_warn(message: str) -> None:
        Logger.log(message, LogLevel.WARNING)

    @staticmethod
    def log_error(message: str) -> None:
        Logger.log(message, LogLevel.ERROR)

    @staticmethod
    def log_verbose(message: str) -> None:
        Logger.log(message, LogLevel.VERBOSE)


# ----------------------------------------------------------------------------------- auto-complete config
class ModelConfig:
    """The configuration ``auto_complete_config`` receives and returns. The setters fill what the config
    leaves out and raise ValueError when the model contradicts what it sets (Triton's rules)."""

    def __init__(self, model_config: str | Mapping[str, Any]) -> None:
        config = json.loads(model_config) if isinstance(model_config, str) else json.loads(json.dumps(model_config))
        config.setdefault("input", [])
        config.setdefault("output", [])
        config.setdefault("max_batch_size", 0)
        config.setdefault("name", "")
        self._model_config: dict[str, Any] = config

    def as_dict(self) -> dict[str, Any]:
        return self._model_config

    def _name(self) -> str:
        return str(self._model_config.get("name", ""))

    def set_max_batch_size(self, max_batch_size: int) -> None:
        current = int(self._model_config.get("max_batch_size", 0) or 0)
        if current > max_batch_size:
            raise ValueError(
                f"configuration specified max_batch_size {current}, but in auto-complete-config function for "
                f"model '{self._name()}' specified max_batch_size {max_batch_size}"
            )
        self._model_config["max_batch_size"] = int(max_batch_size)

    def set_dynamic_batching(self) -> None:
        for other in ("sequence_batching", "ensemble_scheduling"):
            if other in self._model_config:
                raise ValueError(
                    f"Configuration specified scheduling_choice as '{other}', but auto-complete-config function "
                    f"for model '{self._name()}' tries to set scheduling_choice as 'dynamic_batching'"
                )
        self._model_config.setdefault("dynamic_batching", {})

    def add_input(self, input: Mapping[str, Any]) -> None:
        self._add_tensor("input", input, ("name", "data_type", "dims", "optional"))

    def add_output(self, output: Mapping[str, Any]) -> None:
        self._add_tensor("output", output, ("name", "data_type", "dims"))

    def _add_tensor(self, kind: str, tensor: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
        name = tensor.get("name")
        extra = [key for key in tensor if key not in allowed]
        if extra:
            raise ValueError(
                f"{kind} '{name}' in auto-complete-config function for model '{self._name()}' contains property "
                f"other than {', '.join(repr(a) for a in allowed)}."
            )
        for required in ("name", "data_type", "dims"):
            if required not in tensor:
                where = f"{kind} '{name}'" if required != "name" else kind
                raise ValueError(
                    f"{where} in auto-complete-config function for model '{self._name()}' is missing "
                    f"'{required}' property."
                )
        dims = [int(d) for d in tensor["dims"]]
        for current in self._model_config[kind]:
            if current.get("name") != name:
                continue
            current_type = current.get("data_type", "TYPE_INVALID")
            if current_type not in ("", "TYPE_INVALID") and current_type != tensor["data_type"]:
                raise ValueError(
                    f"unable to load model '{self._name()}', configuration expects datatype {current_type} for "
                    f"{kind} '{name}', model provides {tensor['data_type']}"
                )
            current_dims = [int(d) for d in current.get("dims", [])]
            if current_dims and current_dims != dims:
                raise ValueError(
                    f"model '{self._name()}', tensor '{name}': the model expects dims {dims} but the model "
                    f"configuration specifies dims {current_dims}"
                )
            if "optional" in tensor and "optional" in current and bool(current["optional"]) != bool(tensor["optional"]):
                raise ValueError(
                    f"model '{self._name()}', tensor '{name}': the model expects optional {tensor['optional']} "
                    f"but the model configuration specifies optional {current['optional']}"
                )
            current["data_type"] = tensor["data_type"]
            current["dims"] = dims
            if "optional" in tensor and "optional" not in current:
                current["optional"] = bool(tensor["optional"])
            return
        entry: dict[str, Any] = {"name": name, "data_type": tensor["data_type"], "dims": dims}
        if "optional" in tensor:
            entry["optional"] = bool(tensor["optional"])
        self._model_config[kind].append(entry)

    def set_model_transaction_policy(self, transaction_policy_dict: Mapping[str, Any]) -> None:
        for key in transaction_policy_dict:
            if key != "decoupled":
                raise ValueError(
                    f"model transaction property in auto-complete-config function for model '{self._name()}' "
                    "contains property other than 'decoupled'."
                )
        wanted = bool(transaction_policy_dict.get("decoupled", False))
        current = self._model_config.get("model_transaction_policy")
        if current is not None and "decoupled" in current and bool(current["decoupled"]) != wanted:
            raise ValueError(
                f"trying to change decoupled property in auto-complete-config for model '{self._name()}', which "
                f"is already set to '{bool(current['decoupled'])}'."
            )
        self._model_config["model_transaction_policy"] = {"decoupled": wanted}
