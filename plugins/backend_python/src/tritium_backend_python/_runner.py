"""The model runner: one ``TritonPythonModel`` object, driven the way Triton's Python backend drives it.

The same runner serves both modes: inside a stub process (isolated mode) and inside the server (in-process
mode). It speaks "wire" values only, plain tuples of strings, dicts and numpy arrays that cross a process
boundary as they are:

- a request is ``(request_id, correlation_id, flags, parameters, requested_output_names, inputs,
  timeout_us)`` with ``inputs`` a list of ``(name, wire datatype, array)``;
- a result is ``("ok", outputs, parameters)`` or ``("error", code name, message)``.

This module runs in stub processes: it imports only the standard library, numpy and
``triton_python_backend_utils``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import sys
import traceback
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import triton_python_backend_utils as pb_utils

from tritium_backend_python._channel import pack_array, unpack_array

WireTensor = tuple[str, str, Any]
WireRequest = tuple[str, "int | str", int, dict[str, Any], list[str], list[WireTensor], int]
Result = tuple[Any, ...]
Emit = Callable[[int, "list[WireTensor] | None", bool, "tuple[str, str] | None"], None]
"""``emit(request index, outputs or None, final, error (code, message) or None)`` for decoupled models."""


class ModelLoadError(Exception):
    """The model file cannot be loaded or its ``initialize`` failed; the message says why."""


def load_model_class(model_file: Path, module_name: str) -> type:
    """Import ``model_file`` as ``module_name`` and return its ``TritonPythonModel`` class.

    The model's version folder goes first on ``sys.path`` so that modules next to ``model.py`` import,
    as they do under Triton.
    """
    if not model_file.is_file():
        raise ModelLoadError(f"model file '{model_file}' not found")
    folder = str(model_file.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(module_name, model_file)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import '{model_file}'")
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(module_name, None)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise ModelLoadError(f"importing '{model_file}' exited: {exc!r}") from None
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        raise ModelLoadError(f"failed to import '{model_file}': {detail}") from None
    model_class = getattr(module, "TritonPythonModel", None)
    if not isinstance(model_class, type):
        raise ModelLoadError(f"'{model_file}' defines no class TritonPythonModel")
    return model_class


def auto_complete(model_class: type, config_json: str) -> str:
    """Run the class's ``auto_complete_config`` (when it has one) on the config; returns the config JSON."""
    method = getattr(model_class, "auto_complete_config", None)
    if method is None:
        return config_json
    config = pb_utils.ModelConfig(config_json)
    try:
        result = method(config)
    except Exception as exc:
        raise ModelLoadError(f"auto_complete_config failed: {_describe(exc)}") from None
    if not isinstance(result, pb_utils.ModelConfig):
        raise ModelLoadError("auto_complete_config must return the pb_utils.ModelConfig it was given")
    return json.dumps(result.as_dict())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, pb_utils.TritonError | pb_utils.TritonModelException):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


_HIDDEN_FRAMES = (
    str(Path(__file__).resolve().parent),  # this package
    str(Path(pb_utils.__file__).resolve()),  # pb_utils: in Triton a C++ extension, absent from tracebacks
    str(Path(asyncio.__file__).resolve().parent),  # the loop running an async execute
)


def _frames(exc: BaseException) -> str:
    """The traceback of model code as Triton's stub prints it: ``  <file>(<line>): <function>`` lines,
    innermost first."""
    frames = [
        frame for frame in traceback.extract_tb(exc.__traceback__)
        if not str(Path(frame.filename).resolve()).startswith(_HIDDEN_FRAMES)
    ]
    return "".join(f"  {frame.filename}({frame.lineno}): {frame.name}\n" for frame in reversed(frames))


def _error_of(exc: BaseException, prefix: str = "") -> tuple[str, str]:
    """(code name, message) of an exception raised by model code: a raised ``TritonError`` keeps its code
    and message; anything else is INTERNAL with Triton's text, ``<prefix><Type>: <message>`` and the model's
    frames after ``At:``."""
    if isinstance(exc, pb_utils.TritonError):
        return exc.code_name(), exc.message()
    text = f"{type(exc).__name__}: {exc}"
    frames = _frames(exc)
    if frames:
        text += f"\n\nAt:\n{frames}"
    return "INTERNAL", prefix + text


class ModelRunner:
    """One instance of a Python model."""

    def __init__(self, model_class: type, *, decoupled: bool) -> None:
        self.model_class = model_class
        self.decoupled = decoupled
        self.model: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async_execute = False
        self._prefix = "Failed to process the request(s) for model '', message: "

    def initialize(self, args: dict[str, str]) -> None:
        """Create the model object and call its ``initialize(args)`` (sync or async) when it has one."""
        name = args.get("model_instance_name", "")
        # Triton's stub names the instance (``<model>_<index>``) but calls it the model
        self._prefix = f"Failed to process the request(s) for model '{name}', message: "
        try:
            self.model = self.model_class()
            method = getattr(self.model, "initialize", None)
            if method is not None:
                self._call(method, args)
        except Exception as exc:
            raise ModelLoadError(f"initialize failed: {_describe(exc)}") from None
        execute = getattr(self.model, "execute", None)
        if execute is None:
            raise ModelLoadError("TritonPythonModel has no execute method")
        self._async_execute = inspect.iscoroutinefunction(execute)

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        result = method(*args)
        if inspect.isawaitable(result):
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(result)
        return result

    def finalize(self) -> None:
        """Call the model's ``finalize()`` when it has one; errors are reported, not raised."""
        method = getattr(self.model, "finalize", None)
        try:
            if method is not None:
                self._call(method)
        finally:
            if self._loop is not None:
                self._loop.close()
                self._loop = None

    # ------------------------------------------------------------------------------------ execute
    def _requests(
        self, wire: Sequence[WireRequest], emit: Emit | None, states: list[list[bool]] | None = None
    ) -> list[pb_utils.InferenceRequest]:
        requests = []
        for index, (request_id, correlation_id, flags, parameters, requested, inputs, timeout) in enumerate(wire):
            request = pb_utils.InferenceRequest.__new__(pb_utils.InferenceRequest)
            request._model_name = ""
            request._inputs = [tensor_from_wire(name, datatype, array) for name, datatype, array in inputs]
            request._requested_output_names = requested
            request._request_id = request_id
            request._correlation_id = correlation_id
            request._model_version = -1
            request._flags = flags
            request._timeout = timeout
            request._trace = None
            request._parameters = parameters
            request._release_flags = pb_utils.TRITONSERVER_REQUEST_RELEASE_ALL
            if emit is None or states is None:
                request._response_sender = None
            else:
                states.append([False])
                request._response_sender = self._sender(index, emit, states[-1])
            requests.append(request)
        return requests

    @staticmethod
    def _sender(index: int, emit: Emit, closed: list[bool]) -> pb_utils.InferenceResponseSender:
        """The response sender of request ``index``; ``closed[0]`` turns True once it sent the final flag
        (or its request failed as a whole), after which dropping it reports nothing."""

        def send(response: pb_utils.InferenceResponse | None, flags: int) -> None:
            final = bool(flags & pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            if final:
                closed[0] = True
            if response is None:
                emit(index, None, final, None)
                return
            error = response.error()
            if error is not None:
                emit(index, None, final, (error.code_name(), error.message()))
                return
            emit(index, [tensor_to_wire(t) for t in response.output_tensors()], final, None)

        def released() -> None:
            # The model dropped the sender without the final flag: end the stream rather than hang it.
            if not closed[0]:
                closed[0] = True
                emit(index, None, True, ("INTERNAL", "the model released the response sender without sending "
                                                     "the final flag (TRITONSERVER_RESPONSE_COMPLETE_FINAL)"))

        sender = pb_utils.InferenceResponseSender(send)
        weakref.finalize(sender, released)
        return sender

    def execute(self, wire: Sequence[WireRequest]) -> list[Result]:
        """Run ``execute`` on the requests; one result per request, in order."""
        requests = self._requests(wire, None)
        try:
            responses = self._run(requests)
        except Exception as exc:
            code, message = _error_of(exc, self._prefix)
            return [("error", code, message)] * len(requests)
        if not isinstance(responses, list | tuple):  # Triton's texts, from its stub
            message = f"{self._prefix}Expected a list in the execute return, found type '{type(responses)}'."
            return [("error", "INTERNAL", message)] * len(requests)
        if len(responses) != len(requests):
            message = (
                f"{self._prefix}Number of InferenceResponse objects do not match the number of InferenceRequest "
                f"objects. InferenceRequest(s) size is:{len(requests)}, and InferenceResponse(s) size is:"
                f"{len(responses)}\n"
            )
            return [("error", "INTERNAL", message)] * len(requests)
        return [self._result(response) for response in responses]

    @staticmethod
    def _result(response: Any) -> Result:
        if not isinstance(response, pb_utils.InferenceResponse):
            return ("error", "INTERNAL", f"execute returned {type(response).__name__} where an InferenceResponse "
                    "belongs")
        error = response.error()
        if error is not None:
            return ("error", error.code_name(), error.message())
        try:
            outputs = [tensor_to_wire(t) for t in response.output_tensors()]
        except Exception as exc:
            return ("error", "INTERNAL", f"invalid output tensor: {_describe(exc)}")
        return ("ok", outputs, response._parameters_dict())

    def execute_decoupled(self, wire: Sequence[WireRequest], emit: Emit) -> tuple[str, str] | None:
        """Run ``execute`` of a decoupled model: responses go out through ``emit`` (possibly from other
        threads, after this returns). Returns the error of ``execute`` itself, if it raised."""
        states: list[list[bool]] = []
        requests = self._requests(wire, emit, states)
        try:
            self._run(requests)
        except Exception as exc:
            for state in states:  # the error answers every request: dropped senders report nothing more
                state[0] = True
            return _error_of(exc, self._prefix)
        return None

    def _run(self, requests: list[pb_utils.InferenceRequest]) -> Any:
        if self._async_execute:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(self.model.execute(requests))
        return self.model.execute(requests)


# ------------------------------------------------------------------------------------------------ BLS
def tensor_to_wire(tensor: pb_utils.Tensor) -> WireTensor:
    """What crosses to the server for a tensor: ``(name, datatype, array or packed small array)``."""
    name, datatype, array = pb_utils._tensor_to_wire(tensor)
    return name, datatype, pack_array(array)


def tensor_from_wire(name: str, datatype: str, array: Any) -> pb_utils.Tensor:
    """A tensor the server sent. BF16 crosses as its uint16 bits (the model's environment may lack
    ml_dtypes); it becomes ``ml_dtypes.bfloat16`` here when that is installed."""
    array = unpack_array(array)
    if datatype == "BF16" and array.dtype.kind == "u":
        bf16 = pb_utils._bfloat16()
        if bf16 is not None:
            array = array.view(bf16)
    return pb_utils.Tensor._wrap(name, datatype, array)


def request_to_wire(request: pb_utils.InferenceRequest) -> tuple[Any, ...]:
    """A BLS request as the server reads it."""
    return (
        request.model_name(),
        request.model_version(),
        request.request_id(),
        request.correlation_id(),
        request.flags(),
        request.timeout(),
        request._parameters_dict(),
        request.requested_output_names(),
        [tensor_to_wire(t) for t in request.inputs()],
    )


def response_from_wire(wire: tuple[Any, ...]) -> pb_utils.InferenceResponse:
    """A BLS response from ``(outputs, parameters, error)``."""
    outputs, parameters, error = wire
    if error is not None:
        code, message = error
        number = pb_utils.TritonError._NAMES.index(code) if code in pb_utils.TritonError._NAMES else 1
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, number), parameters=parameters)
    tensors = [tensor_from_wire(name, datatype, array) for name, datatype, array in outputs]
    return pb_utils.InferenceResponse(tensors, parameters=parameters)
