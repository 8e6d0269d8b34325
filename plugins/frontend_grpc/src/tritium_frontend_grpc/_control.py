"""Control-plane answers of the data plane (dicts shaped like Triton's JSON) -> gRPC response messages.

The service's dicts use the same field names as the gRPC messages, so most conversions are
``json_format.ParseDict``; the few that differ in shape (shared memory regions keyed by name, trace
settings as string lists, log settings as typed oneofs) are converted here by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from tritium import TritiumError
from tritium_frontend_grpc.proto import grpc_service_pb2 as pb

_M = TypeVar("_M", bound=Message)


def parse(data: Mapping[str, Any], message: _M) -> _M:
    """Fill ``message`` from a JSON-shaped dict, ignoring keys the message does not have."""
    json_format.ParseDict(dict(data), message, ignore_unknown_fields=True)
    return message


def server_metadata(data: Mapping[str, Any]) -> pb.ServerMetadataResponse:
    return parse(data, pb.ServerMetadataResponse())


def model_metadata(data: Mapping[str, Any]) -> pb.ModelMetadataResponse:
    return parse(data, pb.ModelMetadataResponse())


def model_config(config: Any) -> pb.ModelConfigResponse:
    """Wrap the kernel's ModelConfig message (bytes cross, whatever pool its class lives in)."""
    response = pb.ModelConfigResponse()
    response.config.MergeFromString(config.SerializeToString())
    return response


def statistics(data: Mapping[str, Any]) -> pb.ModelStatisticsResponse:
    return parse(data, pb.ModelStatisticsResponse())


def repository_index(models: Iterable[Mapping[str, Any]]) -> pb.RepositoryIndexResponse:
    response = pb.RepositoryIndexResponse()
    for model in models:
        parse(model, response.models.add())
    return response


def system_shm_status(regions: Iterable[Mapping[str, Any]]) -> pb.SystemSharedMemoryStatusResponse:
    response = pb.SystemSharedMemoryStatusResponse()
    for region in regions:
        parse(region, response.regions[str(region["name"])])
    return response


def load_parameters(parameters: Mapping[str, Any]) -> tuple[str | None, dict[str, bytes] | None]:
    """RepositoryModelLoad parameters -> (config JSON, files) with Triton's validation."""
    config: str | None = None
    files: dict[str, bytes] | None = None
    for key, param in parameters.items():
        which = param.WhichOneof("parameter_choice")
        if key == "config":
            if which != "string_param":
                raise TritiumError.invalid_arg(
                    f"invalid value type for load parameter '{key}', expected string_param."
                )
            config = param.string_param
        elif key.startswith("file:"):
            if which != "bytes_param":
                raise TritiumError.invalid_arg(
                    f"invalid value type for load parameter '{key}', expected bytes_param."
                )
            if files is None:
                files = {}
            files[key[len("file:") :]] = param.bytes_param
        else:
            raise TritiumError.invalid_arg(f"unrecognized load parameter '{key}'.")
    return config, files


def unload_dependents(parameters: Mapping[str, Any]) -> bool:
    """The ``unload_dependents`` flag of RepositoryModelUnload (bool_param, else INVALID_ARG)."""
    param = parameters.get("unload_dependents")
    if param is None:
        return False
    if param.WhichOneof("parameter_choice") != "bool_param":
        raise TritiumError.invalid_arg(
            "invalid value type for 'unload_dependents' parameter, expected bool_param."
        )
    return bool(param.bool_param)


def trace_update(request: pb.TraceSettingRequest) -> dict[str, Any]:
    """TraceSettingRequest settings -> the service's update mapping (no value = clear: None; trace_level
    stays a list, other single values become strings, as in Triton's JSON)."""
    update: dict[str, Any] = {}
    for key, setting in request.settings.items():
        values = list(setting.value)
        if not values:
            update[key] = None
        elif key == "trace_level" or len(values) > 1:
            update[key] = values
        else:
            update[key] = values[0]
    return update


def trace_settings(data: Mapping[str, Any]) -> pb.TraceSettingResponse:
    response = pb.TraceSettingResponse()
    for key, value in data.items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        response.settings[key].value.extend(_setting_text(v) for v in values)
    return response


def _setting_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def log_update(request: pb.LogSettingsRequest) -> dict[str, Any]:
    """LogSettingsRequest settings -> the service's update mapping (a setting with no value is None)."""
    update: dict[str, Any] = {}
    for key, setting in request.settings.items():
        which = setting.WhichOneof("parameter_choice")
        update[key] = getattr(setting, which) if which else None
    return update


def log_settings(data: Mapping[str, Any]) -> pb.LogSettingsResponse:
    response = pb.LogSettingsResponse()
    for key, value in data.items():
        setting = response.settings[key]
        if isinstance(value, bool):
            setting.bool_param = value
        elif isinstance(value, int):
            setting.uint32_param = value
        else:
            setting.string_param = "" if value is None else str(value)
    return response
