"""The TensorFlow-free reader of ``saved_model.pb``: it must agree with TensorFlow's own parser on every
signature, and turn anything else into a ConfigError."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritium_backend_tf._dtypes import TF_TYPE_NAMES
from tritium_backend_tf._savedmodel_file import SavedModelFile

from tritium import ConfigError

saved_model_pb2 = pytest.importorskip("tensorflow.core.protobuf.saved_model_pb2")


def _tensorflow_view(data: bytes) -> list[tuple[frozenset[str], dict]]:
    """What TensorFlow's own classes read from the same bytes, in the reader's terms."""
    message = saved_model_pb2.SavedModel()
    message.ParseFromString(data)
    graphs = []
    for graph in message.meta_graphs:
        signatures = {}
        for name, signature in graph.signature_def.items():
            if name == "__saved_model_init_op":
                continue
            signatures[name] = tuple(
                tuple(
                    (key, side[key].name, side[key].dtype,
                     None if side[key].tensor_shape.unknown_rank
                     else tuple(max(d.size, -1) for d in side[key].tensor_shape.dim))
                    for key in sorted(side)
                )
                for side in (signature.inputs, signature.outputs)
            )
        graphs.append((frozenset(graph.meta_info_def.tags), signatures))
    return graphs


def _reader_view(data: bytes) -> list[tuple[frozenset[str], dict]]:
    saved = SavedModelFile.parse(data)
    return [
        (graph.tags, {
            name: tuple(
                tuple((t.key, t.tensor_name, t.tf_type, t.dims) for t in side)
                for side in (signature.inputs, signature.outputs)
            )
            for name, signature in graph.signatures.items()
        })
        for graph in saved.meta_graphs
    ]


@pytest.mark.parametrize("model", ["simple", "identities", "identities_nobatch", "tagged", "scalar", "variable"])
def test_reader_agrees_with_tensorflow_on_built_models(tf_models, model):
    data = (getattr(tf_models, model) / "saved_model.pb").read_bytes()
    assert _reader_view(data) == _tensorflow_view(data)


def test_identities_have_a_signature_per_datatype(tf_models):
    (graph,) = SavedModelFile.read(tf_models.identities).meta_graphs
    assert "serve" in graph.tags
    assert "identity_bytes" in graph.signatures and "serving_default" in graph.signatures
    (tensor,) = graph.signatures["identity_bytes"].inputs
    assert (tensor.key, TF_TYPE_NAMES[tensor.tf_type], tensor.dims) == ("INPUT0", "DT_STRING", (-1, -1))


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
tensor_infos = st.tuples(
    names,
    st.integers(0, 30),
    st.one_of(st.none(), st.lists(st.integers(-1, 2**40), max_size=5)),
)


@st.composite
def saved_models(draw):
    message = saved_model_pb2.SavedModel()
    for _ in range(draw(st.integers(1, 3))):
        graph = message.meta_graphs.add()
        graph.meta_info_def.tags.extend(draw(st.lists(names, max_size=3)))
        for signature_name in draw(st.lists(names, max_size=3, unique=True)):
            signature = graph.signature_def[signature_name]
            signature.method_name = "tensorflow/serving/predict"
            for side in (signature.inputs, signature.outputs):
                for key, (tensor_name, dtype, dims) in draw(
                    st.dictionaries(names, tensor_infos, max_size=3)
                ).items():
                    side[key].name = tensor_name
                    side[key].dtype = dtype
                    if dims is None:
                        side[key].tensor_shape.unknown_rank = True
                    else:
                        for size in dims:
                            side[key].tensor_shape.dim.add(size=size)
        graph.graph_def.node.add(name="ignored", op="NoOp")  # skipped as an unknown field by the reader
    return message.SerializeToString()


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(saved_models())
def test_reader_agrees_with_tensorflow_on_generated_signatures(data):
    assert _reader_view(data) == _tensorflow_view(data)


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_config_error(data):
    try:
        saved = SavedModelFile.parse(data)
    except ConfigError as exc:
        assert "SavedModel" in str(exc)
    else:
        assert saved.meta_graphs


def test_missing_and_empty_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unable to read SavedModel"):
        SavedModelFile.read(tmp_path)
    (tmp_path / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ConfigError, match="holds no MetaGraphDef"):
        SavedModelFile.read(tmp_path)
