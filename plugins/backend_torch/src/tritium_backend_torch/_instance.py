"""Model instances: a TorchScript module or an AOTInductor package, and the tensor conversions around them.

Both kinds share :class:`TorchInstance.execute`: inputs become tensors on the instance's device (strings
become ``List[str]``), the model runs on the instance's CUDA stream under ``torch.inference_mode`` (or
``no_grad``), and each requested output is checked against the config's datatype and copied to the host
once. Errors follow Triton: a failing ``forward`` is INTERNAL ``PyTorch execute failure: ...``, an output of
another datatype than the config's is INVALID_ARG ``configuration expects datatype ...``.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from tritium import Batch, DataType, FailureReason, ModelInstance, StatusCode, TritiumError
from tritium_backend_torch._aoti import input_error
from tritium_backend_torch._datatypes import datatype_of, decode_strings, encode_strings, to_numpy, to_tensor
from tritium_backend_torch._naming import Convention

if TYPE_CHECKING:
    from tritium_backend_torch._device import Device
    from tritium_backend_torch._parameters import TorchParameters

Array = np.ndarray[Any, Any]


@attrs.define(frozen=True, slots=True)
class TensorPlan:
    """One config tensor: its name, the argument/result position it binds to, and its datatype. Outputs keep
    the shape the model gives them (with a ``reshape``, the reshape's shape), as Triton's backend does."""

    name: str
    position: int
    datatype: DataType


class TorchInstance(ModelInstance, abc.ABC):
    """What TorchScript and AOTInductor instances share: conversions, modes, streams and errors."""

    def __init__(
        self,
        *,
        model_name: str,
        batching: bool,
        device: Device,
        parameters: TorchParameters,
        inputs: Sequence[TensorPlan],
        outputs: Sequence[TensorPlan],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._model_name = model_name
        self._batching = batching
        self._device = device
        self._parameters = parameters
        self._inputs = tuple(inputs)
        self._outputs = {plan.name: plan for plan in outputs}
        self._all_outputs = tuple(plan.name for plan in outputs)
        self._on_close = on_close
        self._closed = False

    @property
    def device(self) -> Device:
        """Where this instance runs."""
        return self._device

    def execute(self, batch: Batch) -> Mapping[str, Array]:
        """Run the model on the batch and return the requested outputs as host arrays."""
        if self._closed:
            raise TritiumError.unavailable(f"model '{self._model_name}' instance is closed")
        names = sorted(batch.requested_outputs) if batch.requested_outputs else self._all_outputs
        unknown = [name for name in names if name not in self._outputs]
        if unknown:
            raise TritiumError.invalid_arg(f"unexpected inference output '{unknown[0]}' for model '{self._model_name}'")
        device = self._device
        try:
            with self._grad_mode(), device.running():
                self._prepare()
                values = {plan.name: self._to_model(plan, batch.inputs) for plan in self._inputs}
                results = self._run(values)
                outputs = {name: self._from_model(self._outputs[name], results) for name in names}
            device.synchronize()
        except TritiumError as exc:
            exc.reason = FailureReason.BACKEND
            raise
        except Exception as exc:
            raise TritiumError(
                StatusCode.INTERNAL, f"PyTorch execute failure: {exc}", reason=FailureReason.BACKEND
            ) from exc
        finally:
            if self._parameters.cache_cleaning:
                device.empty_cache()
        return outputs

    def close(self) -> None:
        """Drop the model (and release a shared module); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._drop()
        if self._on_close is not None:
            self._on_close()

    # ----------------------------------------------------------------------------- for subclasses
    @abc.abstractmethod
    def _run(self, values: Mapping[str, Any]) -> Sequence[Any]:
        """Call the model with the converted inputs (by config name); return its results by position."""

    @abc.abstractmethod
    def _drop(self) -> None:
        """Forget the loaded model."""

    def _prepare(self) -> None:
        """Per-execution settings on the executing thread (TorchScript's executor flags)."""

    def _grad_mode(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        return torch.inference_mode() if self._parameters.inference_mode else torch.no_grad()

    # ----------------------------------------------------------------------------- conversions
    def _to_model(self, plan: TensorPlan, inputs: Mapping[str, Array]) -> Any:
        array = inputs.get(plan.name)
        if array is None:
            raise TritiumError.invalid_arg(
                f"input '{plan.name}' is required by model '{self._model_name}' but the request does not hold it"
            )
        if plan.datatype is DataType.BYTES:
            return decode_strings(array, plan.name)
        return to_tensor(array, self._device.torch_device)

    def _from_model(self, plan: TensorPlan, results: Sequence[Any]) -> Array:
        if plan.position >= len(results):
            raise TritiumError.internal(
                f"output tensor '{plan.name}' is not found: model '{self._model_name}' returned "
                f"{len(results)} output(s)"
            )
        value = results[plan.position]
        if isinstance(value, list):
            self._check_datatype(plan, DataType.BYTES)
            array = encode_strings(value, plan.name)
        else:
            provided = datatype_of(value.dtype)
            self._check_datatype(plan, provided, str(value.dtype))
            if value.dim() == 0:
                raise TritiumError.invalid_arg(f"output '{plan.name}' is a scalar which is not supported.")
            array = to_numpy(value)
        return array

    @staticmethod
    def _check_datatype(plan: TensorPlan, provided: DataType | None, torch_name: str = "") -> None:
        if provided is plan.datatype:
            return
        given = f"TYPE_{provided.value}" if provided is not None else torch_name
        raise TritiumError.invalid_arg(
            f"configuration expects datatype TYPE_{plan.datatype.value} for output '{plan.name}', "
            f"model provides {given}"
        )


class ScriptInstance(TorchInstance):
    """A TorchScript module; ``convention`` says how inputs are passed (positions, or one dict)."""

    def __init__(self, module: Any, *, convention: Convention, argument_count: int, **common: Any) -> None:
        super().__init__(**common)
        self._module = module
        self._dict_input = convention is Convention.DICT
        self._argument_count = argument_count

    @property
    def module(self) -> Any:
        """The loaded ``torch.jit.ScriptModule`` (shared with other instances under weight sharing)."""
        return self._module

    def _prepare(self) -> None:
        import torch

        parameters = self._parameters
        torch._C._set_graph_executor_optimize(parameters.optimized_execution)  # thread-local
        if parameters.tensor_fuser is not None:
            torch._C._jit_set_texpr_fuser_enabled(parameters.tensor_fuser)
        if parameters.jit_profiling is not None:
            torch._C._jit_set_profiling_mode(parameters.jit_profiling)
        if parameters.jit_executor is not None:
            torch._C._jit_set_profiling_executor(parameters.jit_executor)
        if self._device.is_gpu:
            torch.backends.cudnn.enabled = parameters.cudnn

    def _run(self, values: Mapping[str, Any]) -> Sequence[Any]:
        module = self._module
        if module is None:
            raise TritiumError.unavailable(f"model '{self._model_name}' instance is closed")
        # forward itself, not module(...): nn.Module's hook machinery costs more than a small model (and
        # Triton's backend calls forward directly too)
        if self._dict_input:
            result = module.forward(dict(values))
        else:
            args: list[Any] = [None] * self._argument_count
            for plan in self._inputs:
                args[plan.position] = values[plan.name]
            result = module.forward(*args)
        return script_results(result)

    def _drop(self) -> None:
        self._module = None


def script_results(result: Any) -> list[Any]:
    """A TorchScript ``forward`` result as a list of outputs, by Triton's rules: a Tensor, a ``List[str]``, or
    a tuple of those; anything else (a dict, a list of tensors, a scalar) is an execute failure."""
    import torch

    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, list):
        _check_string_list(result, "output must be of type Tensor or List[str], received ")
        return [result]
    if isinstance(result, tuple):
        for index, item in enumerate(result):
            if isinstance(item, list):
                _check_string_list(item, f"output at index {index} must be of type Tensor or List[str], received ")
            elif not isinstance(item, torch.Tensor):
                raise TypeError(
                    f"output at index {index} must be of type Tensor or List[str], received {type(item).__name__}"
                )
        return list(result)
    raise TypeError(
        "output must be of type Tensor, List[str] or Tuple containing one of these two types. It should not be "
        "a List / Dictionary of Tensors or a Scalar"
    )


def _check_string_list(items: list[Any], prefix: str) -> None:
    bad = next((item for item in items if not isinstance(item, str)), None)
    if bad is not None:
        kind = "Tensor" if type(bad).__name__ == "Tensor" else type(bad).__name__
        raise TypeError(f"{prefix}List[{kind}]")


class AotiInstance(TorchInstance):
    """An AOTInductor package: inputs are handed over flat, in call-specification order."""

    def __init__(self, compiled: Any, *, leaf_count: int, **common: Any) -> None:
        super().__init__(**common)
        self._compiled = compiled
        self._leaf_count = leaf_count
        self._leaf_names = {plan.position: plan.name for plan in self._inputs}

    def _run(self, values: Mapping[str, Any]) -> Sequence[Any]:
        compiled = self._compiled
        if compiled is None:
            raise TritiumError.unavailable(f"model '{self._model_name}' instance is closed")
        flat: list[Any] = [None] * self._leaf_count
        for plan in self._inputs:
            flat[plan.position] = values[plan.name]
        try:
            results: Sequence[Any] = compiled.loader.run(flat)
        except RuntimeError as exc:
            message = input_error(exc, self._leaf_names)
            if message.startswith("input '"):
                raise TritiumError.invalid_arg(f"model '{self._model_name}' rejected {message}") from None
            raise
        return results

    def _drop(self) -> None:
        self._compiled = None
