"""TensorFlow sessions: the session config a model asks for, and SavedModel / GraphDef loading.

Models run in TensorFlow 1-style sessions (``tf.compat.v1.Session``), as Triton's TensorFlow backend runs
them through the C API: a session takes the per-model thread settings, soft placement and GPU memory
options; ``Session.run`` releases the GIL, so instances execute in parallel; and a SavedModel written by
TensorFlow 2 (``tf.saved_model.save``) and a frozen GraphDef load the same way. Every function here imports
TensorFlow, so the backend calls them only when a model loads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tritium import ConfigError, InstancePlacement, TritiumError
from tritium_backend_tf._savedmodel_file import MetaGraph, SavedModelFile
from tritium_backend_tf._settings import BackendSettings, ModelSettings
from tritium_backend_tf._signature import ModelSignature, TensorInfo, savedmodel_signature

_LOAD_NOTES = ("is deprecated and will be removed", "Restoring parameters from")


class _DropLoadNotes(logging.Filter):
    """Drops the lines TensorFlow's Python logger prints on every SavedModel load (the compat.v1 loader is
    deprecated: sessions are this backend's choice; variables are being restored): the backend logs each
    load itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(note in message for note in _LOAD_NOTES)


def quiet_deprecation_notes() -> None:
    """Install the filter on TensorFlow's Python logger once."""
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _DropLoadNotes) for f in logger.filters):
        logger.addFilter(_DropLoadNotes())


def device_of(placement: InstancePlacement) -> str:
    """The TensorFlow device an instance's graph is placed on."""
    return f"/device:GPU:{placement.device_id}" if placement.kind == "GPU" else "/device:CPU:0"


def session_config(tf: Any, backend: BackendSettings, model: ModelSettings, placement: InstancePlacement) -> Any:
    """A ``tf.compat.v1.ConfigProto`` for one instance's session."""
    config = tf.compat.v1.ConfigProto()
    config.intra_op_parallelism_threads = model.intra_op_threads
    config.inter_op_parallelism_threads = model.inter_op_threads
    config.use_per_session_threads = model.use_per_session_threads
    config.allow_soft_placement = backend.allow_soft_placement
    if placement.kind == "GPU":
        config.gpu_options.allow_growth = backend.allow_gpu_memory_growth
        config.gpu_options.per_process_gpu_memory_fraction = backend.gpu_memory_fraction
        if model.auto_mixed_precision:
            config.graph_options.rewrite_options.auto_mixed_precision = 1  # RewriterConfig.ON
    else:
        config.device_count["GPU"] = 0
    if model.graph_level is not None:
        optimizer = config.graph_options.optimizer_options
        if model.graph_level == -1:
            optimizer.opt_level = -1  # OptimizerOptions.L0: TensorFlow's graph optimizations off
        elif model.graph_level == 1:
            optimizer.global_jit_level = 1  # XLA ON_1
        elif model.graph_level == 2:
            optimizer.global_jit_level = 2  # XLA ON_2
    return config


def check_device(tf: Any, placement: InstancePlacement) -> None:
    """UNAVAILABLE with what to install when a GPU instance meets a TensorFlow that sees no such GPU."""
    if placement.kind != "GPU":
        return
    gpus = tf.config.list_physical_devices("GPU")
    if placement.device_id >= len(gpus):
        raise TritiumError.unavailable(
            f"instance '{placement.name}' is placed on GPU {placement.device_id}, but this TensorFlow sees "
            f"{len(gpus)} GPU(s) (tensorflow-cpu sees none): install TensorFlow with CUDA "
            "(pip install 'tritium-backend-tf[gpu]') or use instance_group { kind: KIND_CPU }"
        )


def load_savedmodel(
    tf: Any, path: Path, model: ModelSettings, config: Any, device: str
) -> tuple[Any, ModelSignature]:
    """A session holding the SavedModel at ``path`` (variables restored), and its chosen signature."""
    saved = SavedModelFile.read(path)
    graph_def, _, signature = savedmodel_signature(
        saved, tag=model.graph_tag, signature=model.signature_def, path=str(path)
    )
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph, config=config)
    try:
        with graph.as_default(), graph.device(device):
            tf.compat.v1.saved_model.loader.load(session, sorted(_tags(graph_def)), str(path))
    except Exception as exc:
        session.close()
        raise _load_error(path, exc) from exc
    return session, signature


def load_graphdef(
    tf: Any, path: Path, model_config: Any, config: Any, device: str, init_ops: tuple[str, ...]
) -> tuple[Any, ModelSignature]:
    """A session holding the GraphDef at ``path``, with ``init_ops`` run once, and the interface the config
    names (the graph's Placeholders as possible inputs, the config's outputs resolved in the graph)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"unable to read GraphDef '{path}': {exc.strerror or exc}") from None
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as exc:
        raise ConfigError(f"unable to parse GraphDef '{path}': not a GraphDef protobuf ({exc})") from None
    graph = tf.Graph()
    try:
        with graph.as_default(), graph.device(device):
            tf.graph_util.import_graph_def(graph_def, name="")
    except Exception as exc:
        raise _load_error(path, exc) from exc
    session = tf.compat.v1.Session(graph=graph, config=config)
    try:
        if init_ops:
            session.run([graph.get_operation_by_name(op) for op in init_ops])
    except Exception as exc:
        session.close()
        raise _load_error(path, exc) from exc
    inputs = tuple(
        _tensor_info(op.name, op.outputs[0]) for op in graph.get_operations() if op.type == "Placeholder"
    )
    outputs = []
    for tensor in model_config.output:
        found = _graph_tensor(graph, tensor.name)
        if found is not None:
            outputs.append(_tensor_info(tensor.name, found))
    return session, ModelSignature(inputs=inputs, outputs=tuple(outputs), exact=False)


def _tags(graph: MetaGraph) -> frozenset[str]:
    return graph.tags


def _graph_tensor(graph: Any, name: str) -> Any:
    """The tensor a config name stands for: ``name:0`` for a node name, else ``name`` as a tensor name."""
    candidates = [name] if ":" in name else [f"{name}:0"]
    for candidate in candidates:
        try:
            return graph.get_tensor_by_name(candidate)
        except (KeyError, ValueError):
            continue
    return None


def _tensor_info(name: str, tensor: Any) -> TensorInfo:
    shape = tensor.shape
    dims = None if shape.rank is None else tuple(-1 if d is None else int(d) for d in shape.as_list())
    return TensorInfo(name, tensor.name, int(tensor.dtype.as_datatype_enum), dims)


def _load_error(path: Path, exc: Exception) -> TritiumError:
    message = getattr(exc, "message", None) or str(exc)
    return TritiumError.invalid_arg(f"unable to load TensorFlow model '{path}': {message.strip()}")
