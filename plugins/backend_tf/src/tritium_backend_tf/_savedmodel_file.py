"""Reading a SavedModel's signatures from ``saved_model.pb`` without TensorFlow.

Auto-complete needs only the signatures (names, element types, shapes), and importing TensorFlow takes
seconds, so the part of the SavedModel schema they live in is declared here, field numbers as in
TensorFlow's ``saved_model.proto``, ``meta_graph.proto`` and ``tensor_shape.proto``, and parsed with the
protobuf runtime the kernel already uses. Everything else in the file (the graph, the object graph, the
saver) is skipped by the parser as unknown fields. Messages live in a private descriptor pool, so they never
clash with TensorFlow's own classes when both are loaded.

What comes out is plain data: :class:`SavedModelFile` with a :class:`MetaGraph` per tag set, each holding
its :class:`Signature` objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from tritium import ConfigError

SAVED_MODEL_PB = "saved_model.pb"
INIT_OP_SIGNATURE = "__saved_model_init_op"
"""A signature TensorFlow adds to carry the initialization op; never a serving signature."""

_PACKAGE = "tritium_backend_tf.savedmodel"
_OPTIONAL = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
_T = descriptor_pb2.FieldDescriptorProto


@attrs.define(frozen=True, slots=True)
class SignatureTensor:
    """One signature input or output: its key (the name clients use), the graph tensor it feeds or
    fetches (``"serving_default_x:0"``), the TensorFlow type number, and dims (-1 where open; None when the
    signature leaves the rank unknown)."""

    key: str
    tensor_name: str
    tf_type: int
    dims: tuple[int, ...] | None


@attrs.define(frozen=True, slots=True)
class Signature:
    """A SignatureDef: inputs and outputs sorted by key."""

    name: str
    inputs: tuple[SignatureTensor, ...]
    outputs: tuple[SignatureTensor, ...]


@attrs.define(frozen=True, slots=True)
class MetaGraph:
    """One MetaGraphDef: its tags and its signatures by name (the init-op signature left out)."""

    tags: frozenset[str]
    signatures: Mapping[str, Signature]


@attrs.define(frozen=True, slots=True)
class SavedModelFile:
    """What ``saved_model.pb`` says about the model's interface."""

    meta_graphs: tuple[MetaGraph, ...]

    @classmethod
    def read(cls, directory: Path) -> SavedModelFile:
        """Parse ``directory/saved_model.pb``; ConfigError naming the file when it is missing or invalid."""
        path = Path(directory) / SAVED_MODEL_PB
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"unable to read SavedModel '{path}': {exc.strerror or exc}") from None
        return cls.parse(data, source=str(path))

    @classmethod
    def parse(cls, data: bytes, *, source: str = SAVED_MODEL_PB) -> SavedModelFile:
        """Parse the bytes of a ``saved_model.pb``."""
        message = _classes()["SavedModel"]()
        try:
            message.ParseFromString(data)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"unable to parse SavedModel '{source}': not a SavedModel protobuf ({exc})") from None
        if not len(message.meta_graphs):
            raise ConfigError(f"unable to parse SavedModel '{source}': it holds no MetaGraphDef")
        return cls(tuple(_meta_graph(graph) for graph in message.meta_graphs))


def _meta_graph(message: Any) -> MetaGraph:
    signatures = {
        name: Signature(name, _tensors(signature.inputs), _tensors(signature.outputs))
        for name, signature in message.signature_def.items()
        if name != INIT_OP_SIGNATURE
    }
    return MetaGraph(frozenset(message.meta_info_def.tags), dict(sorted(signatures.items())))


def _tensors(field: Any) -> tuple[SignatureTensor, ...]:
    tensors = []
    for key in sorted(field):
        info = field[key]
        shape = info.tensor_shape
        dims = None if shape.unknown_rank else tuple(int(d.size) if d.size >= 0 else -1 for d in shape.dim)
        tensors.append(SignatureTensor(key, str(info.name), int(info.dtype), dims))
    return tuple(tensors)


# ------------------------------------------------------------------------------------------ the schema
def _field(name: str, number: int, kind: Any, label: Any = _OPTIONAL, type_name: str = "") -> Any:
    field = descriptor_pb2.FieldDescriptorProto(name=name, number=number, type=kind, label=label)
    if type_name:
        field.type_name = f".{_PACKAGE}.{type_name}"
    return field


def _map_entry(name: str, value_type: str) -> Any:
    entry = descriptor_pb2.DescriptorProto(name=name)
    entry.options.map_entry = True
    entry.field.append(_field("key", 1, _T.TYPE_STRING))
    entry.field.append(_field("value", 2, _T.TYPE_MESSAGE, type_name=value_type))
    return entry


def _file() -> Any:
    proto = descriptor_pb2.FileDescriptorProto(name="tritium_backend_tf/savedmodel.proto", package=_PACKAGE)
    proto.syntax = "proto3"
    dim = descriptor_pb2.DescriptorProto(name="Dim")
    dim.field.extend([_field("size", 1, _T.TYPE_INT64), _field("name", 2, _T.TYPE_STRING)])
    shape = descriptor_pb2.DescriptorProto(name="TensorShapeProto")
    shape.nested_type.append(dim)
    shape.field.extend([
        _field("dim", 2, _T.TYPE_MESSAGE, _REPEATED, "TensorShapeProto.Dim"),
        _field("unknown_rank", 3, _T.TYPE_BOOL),
    ])
    tensor_info = descriptor_pb2.DescriptorProto(name="TensorInfo")
    tensor_info.field.extend([
        _field("name", 1, _T.TYPE_STRING),
        _field("dtype", 2, _T.TYPE_INT32),  # an enum in TensorFlow's schema; the same varint on the wire
        _field("tensor_shape", 3, _T.TYPE_MESSAGE, type_name="TensorShapeProto"),
    ])
    signature = descriptor_pb2.DescriptorProto(name="SignatureDef")
    signature.nested_type.extend([
        _map_entry("InputsEntry", "TensorInfo"),
        _map_entry("OutputsEntry", "TensorInfo"),
    ])
    signature.field.extend([
        _field("inputs", 1, _T.TYPE_MESSAGE, _REPEATED, "SignatureDef.InputsEntry"),
        _field("outputs", 2, _T.TYPE_MESSAGE, _REPEATED, "SignatureDef.OutputsEntry"),
        _field("method_name", 3, _T.TYPE_STRING),
    ])
    meta_info = descriptor_pb2.DescriptorProto(name="MetaInfoDef")
    meta_info.field.append(_field("tags", 4, _T.TYPE_STRING, _REPEATED))
    meta_graph = descriptor_pb2.DescriptorProto(name="MetaGraphDef")
    meta_graph.nested_type.append(_map_entry("SignatureDefEntry", "SignatureDef"))
    meta_graph.field.extend([
        _field("meta_info_def", 1, _T.TYPE_MESSAGE, type_name="MetaInfoDef"),
        _field("signature_def", 5, _T.TYPE_MESSAGE, _REPEATED, "MetaGraphDef.SignatureDefEntry"),
    ])
    saved_model = descriptor_pb2.DescriptorProto(name="SavedModel")
    saved_model.field.extend([
        _field("saved_model_schema_version", 1, _T.TYPE_INT64),
        _field("meta_graphs", 2, _T.TYPE_MESSAGE, _REPEATED, "MetaGraphDef"),
    ])
    proto.message_type.extend([shape, tensor_info, signature, meta_info, meta_graph, saved_model])
    return proto


def _classes() -> dict[str, type]:
    """The message classes, built in a pool of their own (cheap: a few microseconds after the first call
    would matter only per auto-complete, which reads one file)."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file())
    names = ("SavedModel", "MetaGraphDef", "SignatureDef", "TensorInfo", "TensorShapeProto")
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
            for name in names}
