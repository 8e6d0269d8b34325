"""Our model_config.proto against Triton's (the copy tritonclient ships), the private descriptor pool, and the
committed generated code."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import tritonclient.grpc.model_config_pb2 as triton_pb
from google.protobuf import descriptor_pool, text_format

from tritium.config import ModelConfig, load_model_config
from tritium.proto import POOL, model_config_pb2

CORE = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "configs"


def _load_gen_protos() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_protos", CORE / "tools" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _messages(descriptor: Any) -> dict[str, Any]:
    """Every message type under a file or message descriptor, by full name."""
    found: dict[str, Any] = {}
    is_file = hasattr(descriptor, "message_types_by_name")
    children = descriptor.message_types_by_name.values() if is_file else descriptor.nested_types
    for child in children:
        found[child.full_name] = child
        found.update(_messages(child))
    return found


def _field_facts(field: Any) -> tuple[Any, ...]:
    return (
        field.name,
        field.number,
        field.type,
        field.is_repeated,
        field.json_name,
        field.message_type.full_name if field.message_type else None,
        field.enum_type.full_name if field.enum_type else None,
        field.containing_oneof.name if field.containing_oneof else None,
    )


def _enums(descriptor: Any) -> dict[str, list[tuple[str, int]]]:
    enums = {e.full_name: [(v.name, v.number) for v in e.values] for e in descriptor.enum_types_by_name.values()}
    for message in _messages(descriptor).values():
        for enum in message.enum_types:
            enums[enum.full_name] = [(v.name, v.number) for v in enum.values]
    return enums


def test_same_messages_and_fields_as_triton() -> None:
    ours, theirs = _messages(model_config_pb2.DESCRIPTOR), _messages(triton_pb.DESCRIPTOR)
    assert sorted(ours) == sorted(theirs)
    for name, message in ours.items():
        ours_fields = [_field_facts(f) for f in message.fields]
        theirs_fields = [_field_facts(f) for f in theirs[name].fields]
        assert ours_fields == theirs_fields, name  # declaration order too: the JSON rendering follows it


def test_same_enums_as_triton() -> None:
    assert _enums(model_config_pb2.DESCRIPTOR) == _enums(triton_pb.DESCRIPTOR)


def test_registered_in_the_private_pool_under_its_import_path() -> None:
    assert ModelConfig.DESCRIPTOR.file.pool is POOL
    assert ModelConfig.DESCRIPTOR.file.name == "tritium/proto/model_config.proto"
    assert POOL.FindMessageTypeByName("inference.ModelConfig") is ModelConfig.DESCRIPTOR
    with pytest.raises(KeyError):
        descriptor_pool.Default().FindFileByName("tritium/proto/model_config.proto")


def test_default_pool_keeps_tritonclients_model_config() -> None:
    found = descriptor_pool.Default().FindMessageTypeByName("inference.ModelConfig")
    assert found is triton_pb.ModelConfig.DESCRIPTOR
    assert found is not ModelConfig.DESCRIPTOR


def test_round_trip_through_bytes_with_tritonclients_class() -> None:
    ours = load_model_config(DATA / "triton251" / "groups.pbtxt")
    theirs = triton_pb.ModelConfig.FromString(ours.SerializeToString())
    assert text_format.MessageToString(theirs) == text_format.MessageToString(ours)
    assert ModelConfig.FromString(theirs.SerializeToString()) == ours


@pytest.mark.parametrize(
    "imports",
    ["import tritonclient.grpc; import tritium.config", "import tritium.config; import tritonclient.grpc"],
)
def test_both_copies_coexist_in_one_process_in_either_import_order(imports: str) -> None:
    code = (
        f"{imports}\n"
        "from tritonclient.grpc import model_config_pb2 as t\n"
        "from tritium.config import ModelConfig, parse_model_config\n"
        "c = parse_model_config('name: \"m\" max_batch_size: 4 dynamic_batching { priority_levels: 2 }')\n"
        "back = ModelConfig.FromString(t.ModelConfig.FromString(c.SerializeToString()).SerializeToString())\n"
        "assert back == c, back\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_committed_generated_code_is_current() -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (requirements-dev.txt) regenerates the code")
    gen_protos = _load_gen_protos()
    stale = gen_protos.stale_files(CORE / "src")
    assert stale == [], f"regenerate with: .venv/bin/python core/tools/gen_protos.py (stale: {stale})"


def test_generated_module_uses_the_private_pool() -> None:
    source = (CORE / "src" / "tritium" / "proto" / "model_config_pb2.py").read_text()
    assert "_descriptor_pool.Default()" not in source
    assert "from tritium.proto import POOL as _tritium_pool" in source


def test_post_processing_refuses_unexpected_generated_code() -> None:
    gen_protos = _load_gen_protos()
    with pytest.raises(ValueError, match="unexpected generated code"):
        gen_protos.use_private_pool("DESCRIPTOR = something_else()\n")
