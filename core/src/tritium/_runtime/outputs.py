"""Between requests and one execution: batch inputs together, and render a model's outputs per request.

The inputs of several requests are concatenated once along the batch dimension; the outputs are sliced back
per request as views, converted to each configured output's datatype, and turned into Triton's classification
form where a request asked for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from tritium._base.datatypes import DataType
from tritium._base.errors import TritiumError
from tritium._base.tensors import InferenceRequest, InferenceResponse, Tensor
from tritium._runtime.classification import classify
from tritium.abc import Batch

Result = InferenceResponse | TritiumError

_BYTES = DataType.BYTES


@attrs.define(frozen=True, slots=True)
class OutputSpec:
    """How one configured output is rendered: its datatype and classification labels."""

    datatype: DataType
    labels: tuple[str, ...] | None


def _to_datatype(array: np.ndarray[Any, Any], datatype: DataType) -> np.ndarray[Any, Any]:
    """``array`` in the numpy representation of ``datatype`` (no copy when it already is)."""
    if datatype is _BYTES:
        if array.dtype == object:
            return array
        if array.dtype.kind == "U":
            encoded: np.ndarray[Any, Any] = np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])(array)
            return encoded
        return array.astype(object)
    wanted = datatype.numpy_dtype
    converted: np.ndarray[Any, Any] = array if array.dtype == wanted else array.astype(wanted)
    return converted


class OutputRenderer:
    """Batch assembly and per-request output rendering of one model version.

    ``outputs`` maps every configured output name to its :class:`OutputSpec`, in config order; ``batching`` is
    True for models with ``max_batch_size > 0``.
    """

    def __init__(self, model_name: str, version_label: str, outputs: Mapping[str, OutputSpec], batching: bool):
        self.model_name = model_name
        self.version_label = version_label
        self.outputs = dict(outputs)
        self.batching = batching
        # Per-output rendering, precomputed: (name, datatype, numpy dtype or None for BYTES, labels).
        self._render = {
            name: (name, spec.datatype, None if spec.datatype is _BYTES else spec.datatype.numpy_dtype, spec.labels)
            for name, spec in self.outputs.items()
        }
        self._render_all = tuple(self._render.values())
        self._all_outputs = frozenset(self.outputs)

    def assemble(self, requests: Sequence[InferenceRequest]) -> Batch:
        """One execution's batch: the requests' inputs concatenated along the batch dimension."""
        first = requests[0]
        if len(requests) == 1:
            inputs = {name: t.data for name, t in first.inputs.items()}
            requested = first.requested_outputs
            wanted = frozenset([o.name for o in requested]) if requested else self._all_outputs
            return Batch(inputs, wanted, requests, first.batch_size if self.batching else 0)
        inputs = {}
        for name in first.inputs:
            try:
                inputs[name] = np.concatenate([r.inputs[name].data for r in requests], axis=0)
            except (KeyError, ValueError) as exc:
                raise TritiumError.internal(
                    f"cannot batch input '{name}' of model '{self.model_name}': {exc}"
                ) from None
        names: set[str] = set()
        for r in requests:
            if not r.requested_outputs:
                names = set(self.outputs)
                break
            names.update(o.name for o in r.requested_outputs)
        batch_size = sum(r.batch_size for r in requests) if self.batching else 0
        return Batch(inputs, frozenset(names), requests, batch_size)

    def split(self, requests: Sequence[InferenceRequest], outputs: Mapping[str, Any], total: int) -> list[Result]:
        """One response (or error) per request from one execution's outputs."""
        results: list[Result] = []
        offset = 0
        sliced = len(requests) > 1
        for request in requests:
            size = request.batch_size
            try:
                tensors = self.request_outputs(request, outputs, offset, size, total, sliced)
            except TritiumError as exc:
                results.append(exc)
            else:
                results.append(
                    InferenceResponse(
                        model_name=self.model_name,
                        model_version=self.version_label,
                        id=request.id,
                        outputs=tensors,
                    )
                )
            offset += size
        return results

    def request_outputs(
        self,
        request: InferenceRequest,
        outputs: Mapping[str, Any],
        offset: int,
        size: int,
        total: int,
        sliced: bool,
    ) -> list[Tensor]:
        """The output tensors ``request`` asked for (all when it named none), sliced at ``offset`` when the
        execution held several requests (``sliced``)."""
        render = self._render
        if request.requested_outputs:
            wanted = [
                (render.get(o.name) or (o.name, None, None, None), o.classification) for o in request.requested_outputs
            ]
        else:
            wanted = [(plan, 0) for plan in self._render_all]
        tensors: list[Tensor] = []
        for (name, datatype, dtype, labels), k in wanted:
            array = outputs.get(name)
            if array is None:
                raise TritiumError.internal(
                    f"model '{self.model_name}' did not produce requested output '{name}'"
                )
            if type(array) is not np.ndarray and not isinstance(array, np.ndarray):
                array = np.asarray(array)
            if datatype is None:
                datatype = DataType.from_numpy(array.dtype)
                dtype = None if datatype is _BYTES else datatype.numpy_dtype
            if sliced and self.batching:
                if array.ndim == 0 or array.shape[0] != total:
                    raise TritiumError.internal(
                        f"output '{name}' of model '{self.model_name}' has batch dimension "
                        f"{array.shape[0] if array.ndim else 'none'}, expected {total}"
                    )
                array = array[offset : offset + size]
            if dtype is None:
                array = _to_datatype(array, datatype)
            elif array.dtype != dtype:
                # Triton sends what the model produced, with its own datatype (a float64 array for an FP32
                # output is FP64 on the wire): a cast here could change values without a word (1.5 -> 1).
                # Only what has no Triton datatype (strings for a numeric output) is converted.
                try:
                    produced = DataType.from_numpy(array.dtype)
                except ValueError:
                    produced = _BYTES
                if produced is not _BYTES:
                    datatype = produced
                else:
                    array = array.astype(dtype)
            if k > 0:
                tensors.append(Tensor(name, _BYTES, classify(array, k, labels, self.batching)))
            else:
                tensors.append(Tensor(name, datatype, array))
        return tensors
