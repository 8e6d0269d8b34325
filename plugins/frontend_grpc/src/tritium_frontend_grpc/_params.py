"""Request and tensor parameters of ModelInferRequest, interpreted as Triton's gRPC frontend does.

Reserved request parameters set fields of :class:`tritium.InferenceRequest` (``sequence_id``,
``sequence_start``, ``sequence_end``, ``priority``, ``timeout``); keys starting with ``triton_`` are
rejected except ``triton_enable_empty_final_response``; every other parameter is passed to the model as a
custom parameter. Tensor parameters name shared memory regions (``shared_memory_region``/``_offset``/
``_byte_size``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from tritium import InferenceRequest, TritiumError, protocol

ALLOWED_TRITON_PARAMETERS = protocol.ALLOWED_TRITON_PARAMETERS

_UINT64 = 1 << 64


@attrs.define(slots=True, frozen=True)
class ShmOutput:
    """A slice of a registered shared memory region named by a tensor's parameters."""

    region: str
    offset: int
    byte_size: int


def apply_request_parameters(request: InferenceRequest, parameters: Mapping[str, Any]) -> None:
    """Apply a ModelInferRequest's ``parameters`` map to ``request`` (Triton's errors on bad types)."""
    for key, param in parameters.items():
        which = param.WhichOneof("parameter_choice")
        if key == "sequence_id":
            if which == "int64_param":
                request.sequence_id = param.int64_param % _UINT64
            elif which == "string_param":
                request.sequence_id = param.string_param
            else:
                raise TritiumError.invalid_arg(
                    "invalid value type for 'sequence_id' parameter, expected int64_param or string_param."
                )
        elif key == "sequence_start":
            if which != "bool_param":
                raise TritiumError.invalid_arg(
                    "invalid value type for 'sequence_start' parameter, expected bool_param."
                )
            request.sequence_start = param.bool_param
        elif key == "sequence_end":
            if which != "bool_param":
                raise TritiumError.invalid_arg(
                    "invalid value type for 'sequence_end' parameter, expected bool_param."
                )
            request.sequence_end = param.bool_param
        elif key == "priority":
            if which == "int64_param":
                if param.int64_param < 0:
                    raise TritiumError.invalid_arg("invalid value for 'priority', expected value >= 0.")
                request.priority = param.int64_param
            elif which == "uint64_param":
                request.priority = param.uint64_param
            else:
                raise TritiumError.invalid_arg(
                    "invalid value type for 'priority' parameter, expected int64_param or uint64_param."
                )
        elif key == "timeout":
            if which != "int64_param":
                raise TritiumError.invalid_arg(
                    "invalid value type for 'timeout' parameter, expected int64_param."
                )
            request.timeout_us = param.int64_param % _UINT64
        elif key.startswith("triton_"):
            if key not in ALLOWED_TRITON_PARAMETERS:
                raise TritiumError.invalid_arg(
                    "parameter keys starting with 'triton_' are reserved for Triton usage. Only the "
                    "following keys starting with 'triton_' are allowed: " + " ".join(ALLOWED_TRITON_PARAMETERS)
                )
            if which != "bool_param":
                raise TritiumError.invalid_arg(
                    f"invalid value type for '{key}' parameter, expected bool_param."
                )
            request.parameters[key] = param.bool_param
        elif which in ("int64_param", "bool_param", "string_param", "double_param"):
            request.parameters[key] = getattr(param, which)
        else:
            raise TritiumError.invalid_arg(
                f"invalid value type for '{key}' parameter, expected int64_param, bool_param, or string_param."
            )


def shm_params(tensor: Any) -> ShmOutput | None:
    """The shared memory slice a tensor's parameters name, or None (Triton's validation and messages)."""
    params = tensor.parameters
    region_param = params.get("shared_memory_region")
    offset_param = params.get("shared_memory_offset")
    size_param = params.get("shared_memory_byte_size")
    if region_param is None and offset_param is None and size_param is None:
        return None
    name = tensor.name
    if region_param is not None and region_param.WhichOneof("parameter_choice") != "string_param":
        raise TritiumError.invalid_arg(
            f"invalid value type for 'shared_memory_region' parameter for tensor '{name}', expected string_param."
        )
    offset = 0
    if offset_param is not None:
        if region_param is None:
            raise TritiumError.invalid_arg(
                f"'shared_memory_offset' can not be specified without 'shared_memory_region' parameter "
                f"for tensor '{name}'"
            )
        if offset_param.WhichOneof("parameter_choice") != "int64_param":
            raise TritiumError.invalid_arg(
                f"invalid value type for 'shared_memory_offset' parameter for tensor '{name}', "
                "expected int64_param."
            )
        offset = offset_param.int64_param
    if size_param is None:
        raise TritiumError.invalid_arg(
            f"'shared_memory_byte_size' must be specified along with 'shared_memory_region' parameter "
            f"for tensor '{name}'"
        )
    if region_param is None:
        raise TritiumError.invalid_arg(
            f"'shared_memory_byte_size' can not be specified without 'shared_memory_region' parameter "
            f"for tensor '{name}'"
        )
    if size_param.WhichOneof("parameter_choice") != "int64_param":
        raise TritiumError.invalid_arg(
            f"invalid value type for 'shared_memory_byte_size' parameter for tensor '{name}', "
            "expected int64_param."
        )
    return ShmOutput(region_param.string_param, offset, size_param.int64_param)


def forwarded_headers(
    pattern: re.Pattern[str] | None, metadata: Sequence[tuple[str, str | bytes]] | None
) -> dict[str, str] | None:
    """Request metadata whose key matches --grpc-header-forward-pattern, as string parameters; reserved
    keys are an INVALID_ARG error, as in Triton."""
    if pattern is None or not metadata:
        return None
    found: dict[str, str] = {}
    for key, value in metadata:
        if key.endswith("-bin") or not pattern.search(key):
            continue
        if protocol.is_reserved_parameter(key):
            raise TritiumError.invalid_arg(
                f"Header '{key}' is reserved for Triton usage and cannot be forwarded."
            )
        found[key] = value if isinstance(value, str) else value.decode("utf-8", "replace")
    return found or None
