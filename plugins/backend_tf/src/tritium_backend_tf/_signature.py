"""The interface a TensorFlow model offers: named inputs and outputs with types and shapes.

For a SavedModel it comes from one signature of one MetaGraphDef, chosen as Triton's TensorFlow backend does:
the MetaGraphDef tagged ``TF_GRAPH_TAG`` (default ``serve``; a SavedModel with a single MetaGraphDef is used
whatever its tags when no tag is named), and the signature ``TF_SIGNATURE_DEF`` (default
``serving_default``; a MetaGraphDef with a single signature is used whatever its name when none is named).
Clients use the signature's keys; the graph's own tensor names stay inside the backend.

For a GraphDef, which declares no signature, the possible inputs are the graph's ``Placeholder`` nodes and
the possible outputs are all its nodes; a config names them by node name (``INPUT0`` feeds ``INPUT0:0``) or
by tensor name (``split:1``).
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from tritium import ConfigError
from tritium_backend_tf._savedmodel_file import MetaGraph, SavedModelFile, Signature

DEFAULT_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"


@attrs.define(frozen=True, slots=True)
class TensorInfo:
    """One model input or output: the name clients use, the graph tensor behind it, the TensorFlow type
    number (0 when unknown) and dims (-1 where open, None when the rank is unknown)."""

    name: str
    tensor_name: str
    tf_type: int
    dims: tuple[int, ...] | None


@attrs.define(frozen=True, slots=True)
class ModelSignature:
    """Inputs and outputs of a model, in key order. ``exact`` is False for a GraphDef, whose listed inputs
    are only the possible ones (a config may use fewer) and whose outputs may be any node."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    exact: bool = True

    def input(self, name: str) -> TensorInfo | None:
        """The input a config calls ``name``, None when there is none."""
        return _find(self.inputs, name)

    def output(self, name: str) -> TensorInfo | None:
        """The output a config calls ``name``, None when there is none."""
        return _find(self.outputs, name)

    @property
    def batchable(self) -> bool:
        """Triton's test: every input and output has a known rank and a variable first dimension."""
        return all(info.dims and info.dims[0] == -1 for info in (*self.inputs, *self.outputs))


def _find(infos: Iterable[TensorInfo], name: str) -> TensorInfo | None:
    for info in infos:
        if info.name == name:
            return info
    return None


def select_meta_graph(saved: SavedModelFile, tag: str | None, *, path: str) -> MetaGraph:
    """The MetaGraphDef tagged ``tag`` (or ``serve``, or the only one); ConfigError listing the tag sets."""
    wanted = tag or DEFAULT_TAG
    for graph in saved.meta_graphs:
        if wanted in graph.tags:
            return graph
    if tag is None and len(saved.meta_graphs) == 1:
        return saved.meta_graphs[0]
    available = "; ".join(",".join(sorted(g.tags)) or "<no tags>" for g in saved.meta_graphs)
    raise ConfigError(
        f"unable to load SavedModel '{path}': no MetaGraphDef has the tag '{wanted}' (tag sets: {available})"
    )


def select_signature(graph: MetaGraph, name: str | None, *, path: str) -> Signature:
    """The signature ``name`` (or ``serving_default``, or the only one); ConfigError listing the names."""
    wanted = name or DEFAULT_SIGNATURE
    signature = graph.signatures.get(wanted)
    if signature is not None:
        return signature
    if name is None and len(graph.signatures) == 1:
        return next(iter(graph.signatures.values()))
    available = ", ".join(graph.signatures) or "none"
    raise ConfigError(
        f"unable to load SavedModel '{path}': no signature '{wanted}' in the MetaGraphDef tagged "
        f"'{','.join(sorted(graph.tags))}' (signatures: {available}); name one with the model config "
        "parameter TF_SIGNATURE_DEF"
    )


def savedmodel_signature(
    saved: SavedModelFile, *, tag: str | None, signature: str | None, path: str
) -> tuple[MetaGraph, Signature, ModelSignature]:
    """The MetaGraphDef, the signature, and the model interface they define."""
    graph = select_meta_graph(saved, tag, path=path)
    chosen = select_signature(graph, signature, path=path)
    return graph, chosen, ModelSignature(
        inputs=tuple(TensorInfo(t.key, t.tensor_name, t.tf_type, t.dims) for t in chosen.inputs),
        outputs=tuple(TensorInfo(t.key, t.tensor_name, t.tf_type, t.dims) for t in chosen.outputs),
    )
