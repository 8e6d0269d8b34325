"""The provisional ``generate`` extension: flat JSON requests mapped onto model inputs and parameters.

Each top-level key (and each key of a ``parameters`` object) names either a model input, whose value
becomes a 1-D tensor padded into the input's shape, or a request parameter. Responses are flat JSON
objects: ``id``, ``model_name``, ``model_version``, response parameters and outputs (a one-element output
without its array), keys sorted as Triton's ``std::map`` orders them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tritium import DataType, InferenceRequest, InferenceResponse, Tensor, TritiumError
from tritium_frontend_http import _jsonio as js
from tritium_frontend_http._errors import invalid, malformed, with_prefix
from tritium_frontend_http._inference import custom_parameter, parse_version
from tritium_frontend_http._tensors import array_to_json, bytes_array, json_bytes_elements, json_to_array

InputMetadata = Mapping[str, tuple[DataType | None, str, list[int]]]
"""Model input name -> (datatype, datatype wire name, metadata shape with -1 for variable dims)."""


def input_metadata(metadata: Mapping[str, Any]) -> dict[str, tuple[DataType | None, str, list[int]]]:
    """Index the ``inputs`` of a model metadata answer by name."""
    out: dict[str, tuple[DataType | None, str, list[int]]] = {}
    for item in metadata.get("inputs", ()):
        name = item["name"]
        wire = item["datatype"]
        try:
            datatype: DataType | None = DataType(wire)
        except ValueError:
            datatype = None
        out[name] = (datatype, wire, [int(d) for d in item["shape"]])
    return out


def _deduce_shape(name: str, shape: list[int], count: int) -> list[int]:
    shape = list(shape)
    remaining = count
    for dim in reversed(shape):
        if dim != -1:
            if dim == 0 or remaining % dim:
                raise invalid(f"The schema can not convert input '{name}' to tensor with proper shape")
            remaining //= dim
    for index in range(len(shape) - 1, -1, -1):
        if shape[index] == -1:
            shape[index] = remaining
            remaining = 1
    if remaining != 1:
        raise invalid(f"The schema can not convert input '{name}' to tensor with proper shape")
    return shape


class GenerateConverter:
    """Builds one InferenceRequest from a generate request body, tracking the input byte budget."""

    def __init__(self, request: InferenceRequest, inputs: InputMetadata, max_input_size: int) -> None:
        self.request = request
        self.inputs = inputs
        self.max_input_size = max_input_size
        self.consumed = 0

    def convert(self, doc: dict[str, Any], nested: bool) -> None:
        for key, value in doc.items():
            if key == "parameters" and not nested:
                if key in self.inputs:
                    raise invalid("Keyword 'parameters' for nested schema also given as input tensor name")
                if type(value) is not dict:
                    raise invalid(f"Expected JSON object for keyword: 'parameters': {js.NOT_OBJECT}")
                try:
                    self.convert(value, True)
                except TritiumError as exc:
                    raise with_prefix("Converting keyword: 'parameters'", exc) from None
            elif key == "id" and not nested:
                continue
            else:
                self._exact(key, value)

    def _exact(self, name: str, value: Any) -> None:
        meta = self.inputs.get(name)
        if meta is None:
            self.request.parameters[name] = custom_parameter(name, value)
            return
        datatype, wire, meta_shape = meta
        if name in self.request.inputs:
            raise invalid(f"[request id: {self.request.id or '<id_unknown>'}] input '{name}' already exists in request")
        count = len(value) if type(value) is list else 1
        data = value if type(value) is list else [value]
        elements: list[bytes] | None = None
        if datatype is DataType.BYTES:
            elements = json_bytes_elements(data)
            byte_size = sum(len(e) for e in elements) + 4 * len(elements)
        else:
            if datatype is None or datatype.itemsize == 0:
                raise invalid(f"input '{name}' has unsupported datatype {wire}")
            byte_size = count * datatype.itemsize
        if byte_size == 0:
            holder = np.dtype(object) if datatype is DataType.BYTES else datatype.numpy_dtype
            zero_shape = [0 if d == -1 else d for d in meta_shape]
            self.request.inputs[name] = Tensor(name, datatype, np.zeros(zero_shape, dtype=holder))
            return
        if byte_size + self.consumed > self.max_input_size:
            raise invalid(
                f"request size of {self.consumed} bytes with input '{name}' of size {byte_size} bytes exceeds "
                f"the maximum allowed input size of {self.max_input_size}. Use --http-max-input-size to "
                "increase the limit."
            )
        self.consumed += byte_size
        shape = tuple(_deduce_shape(name, meta_shape, count))
        if datatype is DataType.BYTES:
            assert elements is not None
            array = bytes_array(elements, shape, name, self.request.model_name, self.request.id)
        else:
            array = json_to_array(data, datatype, shape, name, count)
        self.request.inputs[name] = Tensor(name, datatype, array)


def decode_generate(doc: Any, model: str, version: str, inputs: InputMetadata, max_input_size: int) -> InferenceRequest:
    """The InferenceRequest for a parsed generate body."""
    request = InferenceRequest(model_name=model, inputs={}, model_version=parse_version(version))
    if type(doc) is not dict:
        raise malformed(js.NOT_MEMBERS)
    if "id" in doc:
        try:
            request.id = js.as_str(doc["id"])
        except TritiumError as exc:
            raise with_prefix("Unable to parse 'id'", exc) from None
    GenerateConverter(request, inputs, max_input_size).convert(doc, False)
    return request


def encode_generate(response: InferenceResponse) -> bytes:
    """One generate response as flat JSON (outputs always as JSON data)."""
    fields: dict[str, Any] = {}
    if response.id:
        fields["id"] = response.id
    fields["model_name"] = response.model_name
    fields["model_version"] = str(response.model_version)
    for key, value in response.parameters.items():
        fields[key] = value
    for tensor in response.outputs:
        data = array_to_json(tensor.data, tensor.datatype, tensor.name)
        if tensor.data.size == 1:
            fields[tensor.name] = data[0].item() if isinstance(data, np.ndarray) else data[0]
        else:
            fields[tensor.name] = data
    ordered = {key: fields[key] for key in sorted(fields)}
    return js.dumps(ordered, option=js.OPT_NUMPY)
