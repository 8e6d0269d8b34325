"""One model instance: an ONNX Runtime session and the per-tensor conversions around it.

Everything that depends only on the model (which inputs need decoding or reshaping, which outputs are
strings or bfloat16) is worked out once when the instance is created, so :meth:`OnnxInstance.execute` does
no per-call lookups beyond a dict access per tensor. ``InferenceSession.run`` releases the GIL, so
instances of one model execute concurrently on the kernel's worker threads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tritium import Batch, DataType, FailureReason, ModelInstance, StatusCode, TritiumError
from tritium.config import enum_name
from tritium_backend_onnx._dtypes import bf16_to_ortvalue, decode_strings, encode_strings, ortvalue_to_bf16
from tritium_backend_onnx._signature import ModelSignature

if TYPE_CHECKING:
    from tritium.config import ModelConfig

Array = np.ndarray[Any, Any]
Converter = Callable[[Array], Any]

_ORT_ERROR = re.compile(r"\[ONNXRuntimeError\] : (\d+) : \w+ : (.*)", re.DOTALL)


class OnnxInstance(ModelInstance):
    """Runs batches on one ``onnxruntime.InferenceSession``."""

    def __init__(
        self,
        session: Any,
        *,
        model_name: str,
        config: ModelConfig,
        signature: ModelSignature,
        run_options: Any = None,
    ) -> None:
        self._session = session
        self._model_name = model_name
        self._run_options = run_options
        self._inputs = _input_converters(config, signature)
        self._outputs = _output_converters(config, signature)
        self._bf16_outputs = frozenset(
            name for name, info in ((o.name, signature.output(o.name)) for o in config.output)
            if info is not None and info.ort_type == "tensor(bfloat16)"
        )
        self._all_outputs = tuple(output.name for output in config.output)
        self._model_outputs = frozenset(info.name for info in signature.outputs)

    @property
    def session(self) -> Any:
        """The ``onnxruntime.InferenceSession`` (for tests and diagnostics)."""
        return self._session

    def execute(self, batch: Batch) -> Mapping[str, Array]:
        """Run the session on the batch's inputs, fetching only the requested outputs."""
        feeds: dict[str, Any] = {}
        for name, array in batch.inputs.items():
            convert = self._inputs.get(name)
            feeds[name] = convert(array) if convert is not None else array
        names = self._output_names(batch.requested_outputs)
        try:
            if self._bf16_outputs.intersection(names):
                results = self._run_ort_values(names, feeds)
            else:
                results = self._session.run(names, feeds, self._run_options)
        except TritiumError:
            raise
        except Exception as exc:
            raise runtime_error(exc) from exc
        outputs: dict[str, Array] = {}
        for name, result in zip(names, results, strict=True):
            convert = self._outputs.get(name)
            outputs[name] = convert(result) if convert is not None else result
        return outputs

    def close(self) -> None:
        """Drop the session; ONNX Runtime frees its memory when the last reference goes."""
        self._session = None

    def _output_names(self, requested: frozenset[str]) -> list[str]:
        if not requested:
            return list(self._all_outputs)
        unknown = requested - self._model_outputs
        if unknown:
            raise TritiumError.invalid_arg(
                f"unexpected inference output '{sorted(unknown)[0]}' for model '{self._model_name}'"
            )
        return sorted(requested)

    def _run_ort_values(self, names: Sequence[str], feeds: Mapping[str, Any]) -> list[Any]:
        """Run with OrtValues in and out: the only way to read bfloat16 outputs from Python."""
        import onnxruntime as ort

        values: dict[str, Any] = {}
        for name, value in feeds.items():
            if isinstance(value, np.ndarray):
                if value.dtype == object:
                    raise TritiumError.unsupported(
                        f"model '{self._model_name}' has string input '{name}' and bfloat16 outputs: "
                        "onnxruntime's Python API cannot run such a model"
                    )
                value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value))
            values[name] = value
        results = self._session.run_with_ort_values(list(names), values, self._run_options)
        return [
            ortvalue_to_bf16(value) if name in self._bf16_outputs else value.numpy()
            for name, value in zip(names, results, strict=True)
        ]


def runtime_error(exc: Exception) -> TritiumError:
    """Triton's form of an ONNX Runtime failure: INTERNAL ``onnx runtime error <code>: <message>``."""
    message = str(exc)
    match = _ORT_ERROR.match(message)
    if match is not None:
        message = f"onnx runtime error {match.group(1)}: {match.group(2)}"
    else:
        message = f"onnx runtime error: {message}"
    return TritiumError(StatusCode.INTERNAL, message, reason=FailureReason.BACKEND)


def _input_converters(config: ModelConfig, signature: ModelSignature) -> dict[str, Converter]:
    converters: dict[str, Converter] = {}
    batching = config.max_batch_size > 0
    for tensor in config.input:
        info = signature.input(tensor.name)
        if info is None:
            continue
        steps: list[Converter] = []
        if tensor.HasField("reshape"):
            steps.append(_reshaper(tuple(tensor.reshape.shape), batching))
        elif not info.dims and not batching:
            steps.append(_reshaper((), False))  # a scalar model input served as dims [1]
        datatype = DataType.from_config_name(enum_name(tensor, "data_type"))
        name = tensor.name
        if datatype is DataType.BYTES:
            steps.append(lambda array, name=name: decode_strings(array, name))  # type: ignore[misc]
        elif datatype is DataType.BF16:
            steps.append(bf16_to_ortvalue)
        if steps:
            converters[tensor.name] = _chain(steps)
    return converters


def _output_converters(config: ModelConfig, signature: ModelSignature) -> dict[str, Converter]:
    converters: dict[str, Converter] = {}
    batching = config.max_batch_size > 0
    for tensor in config.output:
        info = signature.output(tensor.name)
        if info is None:
            continue
        steps: list[Converter] = []
        if info.ort_type == "tensor(string)":
            steps.append(encode_strings)
        if tensor.HasField("reshape") or not info.dims:
            steps.append(_reshaper(tuple(tensor.dims), batching))
        if steps:
            converters[tensor.name] = _chain(steps)
    return converters


def _reshaper(shape: tuple[int, ...], batching: bool) -> Converter:
    """Reshape to ``[batch] + shape`` (batching) or ``shape``; the batch size is the array's first dim."""
    if batching:
        return lambda array: array.reshape((array.shape[0] if array.ndim else 1, *shape))
    return lambda array: array.reshape(shape)


def _chain(steps: list[Converter]) -> Converter:
    if len(steps) == 1:
        return steps[0]

    def run(array: Array) -> Any:
        value: Any = array
        for step in steps:
            value = step(value)
        return value

    return run
