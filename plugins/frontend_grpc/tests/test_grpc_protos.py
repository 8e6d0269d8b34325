"""Our grpc_service.proto: generated code is current, lives in the private pool, and matches the wire
schema of NVIDIA's client (every message, field name, number, type and RPC)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor

TOOL = Path(__file__).resolve().parents[1] / "tools" / "gen_protos.py"


def _load_tool() -> Any:
    spec = importlib.util.spec_from_file_location("frontend_grpc_gen_protos", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_generated_code_is_current() -> None:
    pytest.importorskip("grpc_tools")
    stale = _load_tool().stale_files()
    assert stale == [], f"regenerate with {TOOL}"


def test_staleness_check_detects_a_schema_change(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    tool = _load_tool()
    for rel in tool.GENERATED:
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        text = (tool.PLUGIN_SRC / rel).read_text()
        target.write_text(text.replace("raw_input_contents", "raw_input_content_"))
    assert tool.stale_files(tmp_path) == ["tritium_frontend_grpc/proto/grpc_service_pb2.py"]


def test_generated_module_registers_in_private_pool() -> None:
    from tritium_frontend_grpc.proto import grpc_service_pb2

    from tritium.proto import POOL

    assert grpc_service_pb2.DESCRIPTOR.pool is POOL
    assert POOL.FindMessageTypeByName("inference.ModelInferRequest") is grpc_service_pb2.ModelInferRequest.DESCRIPTOR
    # ModelConfigResponse.config is the kernel's ModelConfig (same pool, same descriptor).
    from tritium.proto import model_config_pb2

    config_field = grpc_service_pb2.ModelConfigResponse.DESCRIPTOR.fields_by_name["config"]
    assert config_field.message_type is model_config_pb2.ModelConfig.DESCRIPTOR


def test_plugin_module_import_is_cheap() -> None:
    """Importing the plugin module (what the kernel does at startup) imports neither grpc nor protobuf code."""
    code = (
        "import sys, tritium_frontend_grpc.plugin as p; "
        "print(sorted(m for m in sys.modules if m.startswith(('grpc', 'tritium_frontend_grpc.proto', "
        "'tritium_frontend_grpc._servicer'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def _fields(message: Any) -> dict[str, tuple[int, int, bool, str]]:
    result = {}
    for field in message.fields:
        kind = ""
        if field.message_type is not None:
            kind = field.message_type.full_name
        elif field.enum_type is not None:
            kind = field.enum_type.full_name
        result[field.name] = (field.number, field.type, field.is_repeated, kind)
    return result


def _messages(file: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def walk(message: Any) -> None:
        found[message.full_name] = message
        for nested in message.nested_types:
            walk(nested)

    for message in file.message_types_by_name.values():
        walk(message)
    return found


def test_schema_matches_tritonclient() -> None:
    """Same messages, fields (name, number, type, label, message type), oneofs and RPCs as the schema
    tritonclient was generated from."""
    from tritium_frontend_grpc.proto import grpc_service_pb2 as ours
    from tritonclient.grpc import service_pb2 as theirs

    their_messages = _messages(theirs.DESCRIPTOR)
    our_messages = _messages(ours.DESCRIPTOR)
    assert set(our_messages) == set(their_messages)
    for name, message in their_messages.items():
        assert _fields(our_messages[name]) == _fields(message), name
        assert {o.name: [f.name for f in o.fields] for o in our_messages[name].oneofs} == {
            o.name: [f.name for f in o.fields] for o in message.oneofs
        }, name

    their_service = theirs.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    our_service = ours.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert our_service.full_name == their_service.full_name == "inference.GRPCInferenceService"

    def rpcs(service: Any) -> dict[str, tuple[str, str, bool, bool]]:
        return {
            m.name: (m.input_type.full_name, m.output_type.full_name, m.client_streaming, m.server_streaming)
            for m in service.methods
        }

    assert rpcs(our_service) == rpcs(their_service)


def test_messages_cross_between_pools() -> None:
    """Our classes and tritonclient's coexist in one process and exchange bytes."""
    from tritium_frontend_grpc.proto import grpc_service_pb2 as ours
    from tritonclient.grpc import service_pb2 as theirs

    message = ours.ModelInferRequest(model_name="m", id="1")
    message.parameters["sequence_id"].int64_param = 7
    message.inputs.add(name="A", datatype="FP32", shape=[1, 2])
    message.raw_input_contents.append(b"\0" * 8)
    back = theirs.ModelInferRequest.FromString(message.SerializeToString())
    assert back.parameters["sequence_id"].int64_param == 7
    assert ours.ModelInferRequest.FromString(back.SerializeToString()) == message
    assert ours.ModelInferRequest.DESCRIPTOR.fields_by_name["raw_input_contents"].type == FieldDescriptor.TYPE_BYTES
