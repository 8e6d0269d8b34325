"""Request validation against a model's configuration, with Triton's error messages.

Rules are computed once per loaded model version (:class:`RequestValidator`) so the per-request check is a
few dictionary lookups and tuple comparisons.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from tritium._base.datatypes import DataType
from tritium._base.errors import TritiumError
from tritium._base.tensors import InferenceRequest, Tensor
from tritium.protocol import request_prefix

if TYPE_CHECKING:
    from tritium.config import ModelConfig

_BATCH_NOTE = (
    " NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be "
    "prepended to each input shape. If you want to specify the full shape including the batch dim in your "
    "input dims config, try setting max_batch_size to zero. See the model configuration docs for more info "
    "on max_batch_size."
)


def _format_shape(shape: Sequence[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


@attrs.define(frozen=True, slots=True)
class InputRule:
    name: str
    datatype: DataType
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None
    optional: bool


def _dims_match(shape: Sequence[int], dims: Sequence[int]) -> bool:
    if len(shape) != len(dims):
        return False
    return all(d == -1 or d == s for s, d in zip(shape, dims, strict=True))


class RequestValidator:
    """Checks requests for one model version and fills ``request.batch_size``."""

    def __init__(self, config: ModelConfig) -> None:
        self.model_name = config.name
        self.max_batch_size = int(config.max_batch_size)
        self.inputs: dict[str, InputRule] = {}
        for tensor in config.input:
            reshape = tuple(int(d) for d in tensor.reshape.shape) if tensor.HasField("reshape") else None
            self.inputs[tensor.name] = InputRule(
                tensor.name,
                DataType.from_config_enum(tensor.data_type),
                tuple(int(d) for d in tensor.dims),
                reshape,
                bool(tensor.optional),
            )
        self.required = [r.name for r in self.inputs.values() if not r.optional]
        self.outputs = {o.name for o in config.output}
        # Precomputed for the per-request check: every input name (a request with exactly these names needs
        # no count check), and per input its rule and whether its dims hold no -1 (a plain tuple compare).
        self._names = frozenset(self.inputs)
        self._rules = {name: (rule, -1 not in rule.dims) for name, rule in self.inputs.items()}
        self._reshapes = any(rule.reshape is not None for rule in self.inputs.values())

    def validate(self, request: InferenceRequest) -> None:
        """Raise INVALID_ARG with Triton's message when ``request`` does not fit the model.

        The checks run in Triton's order, so a request with several faults gets the error Triton reports:
        unknown requested outputs (by name, as Triton's ordered set; no request-id prefix), the input count,
        then a first pass over the inputs (unknown name, no batch dimension, batch sizes that differ), the
        batch size, and a second pass (datatype, shape). Triton walks a request's inputs in its hash map's
        order, which for a few inputs is the reverse of the order the client gave them (each lands first in
        the map's list): both passes walk them that way.
        """
        outputs = request.requested_outputs
        if outputs:
            known = self.outputs
            unknown = [o.name for o in outputs if o.name not in known]
            if unknown:
                raise TritiumError.invalid_arg(
                    f"unexpected inference output '{min(unknown)}' for model '{self.model_name}'"
                )
        inputs = request.inputs
        if inputs.keys() != self._names:
            self._check_count(request, request_prefix(request.id))
        tensors = list(inputs.values())
        tensors.reverse()
        rules = self._rules
        batching = self.max_batch_size > 0
        batch_size = 0
        for tensor in tensors:
            if tensor.name not in rules:
                raise TritiumError.invalid_arg(
                    f"unexpected inference input '{tensor.name}' for model '{self.model_name}'"
                )
            if batching:
                shape = tensor.data.shape
                if not shape:
                    raise TritiumError.invalid_arg(
                        f"{request_prefix(request.id)}input '{tensor.name}' has no shape but model requires "
                        f"batch dimension for '{self.model_name}'"
                    )
                if batch_size == 0:
                    batch_size = shape[0]
                elif shape[0] != batch_size:
                    raise TritiumError.invalid_arg(
                        f"{request_prefix(request.id)}input '{tensor.name}' batch size does not match other "
                        f"inputs for '{self.model_name}'"
                    )
        if batching:
            if batch_size < 1 or batch_size > self.max_batch_size:
                raise TritiumError.invalid_arg(
                    f"{request_prefix(request.id)}inference request batch-size must be <= {self.max_batch_size} "
                    f"for '{self.model_name}'"
                )
            request.batch_size = batch_size
        else:
            request.batch_size = 0
        for tensor in tensors:
            rule, exact = rules[tensor.name]
            if tensor.datatype is not rule.datatype:
                raise TritiumError.invalid_arg(
                    f"{request_prefix(request.id)}inference input '{tensor.name}' data-type is "
                    f"'{tensor.datatype.value}', but model '{self.model_name}' expects '{rule.datatype.value}'"
                )
            shape = tensor.data.shape
            dims = shape[1:] if batching else shape
            if not (dims == rule.dims if exact else _dims_match(dims, rule.dims)):
                raise self._shape_error(request_prefix(request.id), rule, shape)
        if self._reshapes:
            self._apply_reshapes(request)

    def _check_count(self, request: InferenceRequest, prefix: str) -> None:
        given = request.inputs
        missing = [n for n in self.required if n not in given]
        if len(self.required) <= len(given) <= len(self.inputs) and (
            not missing or any(n not in self.inputs for n in given)
        ):
            return  # an unknown name is reported by the per-input check
        names = ",".join(f"'{n}'" for n in reversed(given))  # Triton's map order, see validate()
        if len(self.required) == len(self.inputs):
            expected = f"expected {len(self.inputs)} inputs"
        else:
            expected = f"expected number of inputs between {len(self.required)} and {len(self.inputs)}"
        # Triton writes "[" + the names each followed by "," and then drops the last character: with no name
        # missing that drops the "[" itself, hence its "missing required input(s) ]".
        wanted = "[" + ",".join(f"'{n}'" for n in missing) + "]" if missing else "]"
        raise TritiumError.invalid_arg(
            f"{prefix}{expected} but got {len(given)} inputs for model '{self.model_name}'. Got input(s) "
            f"[{names}], but missing required input(s) {wanted}. Please provide all required input(s)."
        )

    def _shape_error(self, prefix: str, rule: InputRule, shape: Sequence[int]) -> TritiumError:
        expected = ([-1] if self.max_batch_size > 0 else []) + list(rule.dims)
        message = (
            f"{prefix}unexpected shape for input '{rule.name}' for model '{self.model_name}'. "
            f"Expected {_format_shape(expected)}, got {_format_shape(shape)}."
        )
        if self.max_batch_size > 0:
            message += _BATCH_NOTE
        return TritiumError.invalid_arg(message)

    def _apply_reshapes(self, request: InferenceRequest) -> None:
        for name, tensor in request.inputs.items():
            rule = self.inputs[name]
            if rule.reshape is None:
                continue
            target = ((tensor.data.shape[0],) if self.max_batch_size > 0 else ()) + rule.reshape
            request.inputs[name] = Tensor(name, tensor.datatype, tensor.data.reshape(target))
