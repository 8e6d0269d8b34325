"""Fixtures of the tensorflow backend's tests: TensorFlow models generated once per session, and helpers.

The SavedModel and GraphDef builders of ``examples/tf_models.py`` are shared with the end-to-end tests and
the example repository; the models only these tests need (several tag sets, a scalar input, an
uninitialized variable with its init op, non-batching shapes) are built here. Everything is built once per
test session into a temporary folder (``tf_models``) and read in place: tests that change a model copy it.
Test modules run with ``--import-mode=importlib`` and cannot import each other, so helpers are fixtures.
"""

from __future__ import annotations

import importlib.util
import json
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format

from tritium import InstancePlacement, ModelSource
from tritium.config import ModelConfig

pytest.importorskip("tensorflow")

ROOT = Path(__file__).resolve().parents[3]


def _load_tf_models() -> Any:
    spec = importlib.util.spec_from_file_location("tf_models", ROOT / "examples" / "tf_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TF_MODELS = _load_tf_models()


def _tagged_savedmodel(path: Path) -> None:
    """A TensorFlow 1-style SavedModel with two MetaGraphDefs: tag ``serve`` (OUTPUT0 = INPUT0 + 1) and
    tag ``serve1`` (OUTPUT0 = INPUT0 * 10), both with signatures ``serving_default`` and ``doubled``."""
    tf = TF_MODELS._tf()
    if (path / "saved_model.pb").is_file():
        return
    builder = tf.compat.v1.saved_model.Builder(str(path))
    for index, (tag, op) in enumerate((("serve", lambda x: x + 1), ("serve1", lambda x: x * 10))):
        graph = tf.Graph()
        with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
            x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
            y = tf.identity(op(x), name="y")
            z = tf.identity(y * 2, name="z")
            info = tf.compat.v1.saved_model.utils.build_tensor_info
            default = tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
                {"INPUT0": info(x)}, {"OUTPUT0": info(y)}, "tensorflow/serving/predict"
            )
            doubled = tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
                {"INPUT0": info(x)}, {"OUTPUT0": info(z)}, "tensorflow/serving/predict"
            )
            signatures = {"serving_default": default, "doubled": doubled}
            if index == 0:
                builder.add_meta_graph_and_variables(session, [tag], signature_def_map=signatures)
            else:
                builder.add_meta_graph([tag], signature_def_map=signatures)
    builder.save()


def _scalar_savedmodel(path: Path) -> None:
    """INPUT0 FP32 scalar -> OUTPUT0 = 2 * INPUT0 (rank 0: auto-complete cannot describe it)."""
    def make(tf: Any) -> tuple[Any, dict[str, Any]]:
        @tf.function(input_signature=[tf.TensorSpec([], tf.float32, name="INPUT0")])
        def double(x: Any) -> dict[str, Any]:
            return {"OUTPUT0": x * 2}

        module = tf.Module()
        module.double = double
        return module, {"serving_default": double}

    TF_MODELS.save_savedmodel(path, make)


def _variable_savedmodel(path: Path) -> None:
    """INPUT0 FP32 [-1, 4] -> OUTPUT0 = INPUT0 * w, w a variable [1, 2, 3, 4] restored from the checkpoint."""
    def make(tf: Any) -> tuple[Any, dict[str, Any]]:
        module = tf.Module()
        module.w = tf.Variable([1.0, 2.0, 3.0, 4.0])

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="INPUT0")])
        def scale(x: Any) -> dict[str, Any]:
            return {"OUTPUT0": x * module.w}

        module.scale = scale
        return module, {"serving_default": scale}

    TF_MODELS.save_savedmodel(path, make)


def _init_ops_graphdef(path: Path) -> None:
    """A GraphDef with a (ref) variable that only the op ``init`` initializes: OUTPUT0 = INPUT0 + v, v = 5."""
    tf = TF_MODELS._tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.int32, [None, 2], name="INPUT0")
        v = tf.compat.v1.Variable(5, name="v", use_resource=False)
        tf.identity(x + v, name="OUTPUT0")
        tf.compat.v1.variables_initializer([v], name="init")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(graph.as_graph_def().SerializeToString())


@pytest.fixture(scope="session")
def tf_models(tmp_path_factory: pytest.TempPathFactory) -> types.SimpleNamespace:
    """Paths of the models built once per session (SavedModel folders and GraphDef files)."""
    root = tmp_path_factory.mktemp("tf-models")
    models = types.SimpleNamespace(
        simple=root / "simple.savedmodel",
        fp32_add_sub=root / "fp32_add_sub.savedmodel",
        identities=root / "identities.savedmodel",
        identities_nobatch=root / "identities_nobatch.savedmodel",
        tagged=root / "tagged.savedmodel",
        scalar=root / "scalar.savedmodel",
        variable=root / "variable.savedmodel",
        graphdef=root / "simple.graphdef",
        init_ops_graphdef=root / "init_ops.graphdef",
    )
    TF_MODELS.add_sub_savedmodel(models.simple)
    TF_MODELS.add_sub_savedmodel(models.fp32_add_sub, dtype="float32", dims=4)
    TF_MODELS.identity_savedmodel(models.identities)
    TF_MODELS.identity_savedmodel(models.identities_nobatch, shape=(2, 3))
    _tagged_savedmodel(models.tagged)
    _scalar_savedmodel(models.scalar)
    _variable_savedmodel(models.variable)
    TF_MODELS.add_sub_graphdef(models.graphdef)
    _init_ops_graphdef(models.init_ops_graphdef)
    return models


def parse_config(text: str = "") -> Any:
    """A ModelConfig from protobuf text."""
    return text_format.Parse(text, ModelConfig())


def link_model(root: Path, name: str, model: Path, *, version: int = 1, config: str | None = None) -> ModelSource:
    """Lay out ``root/name/version/model.savedmodel`` (or ``model.graphdef``) as a symlink to a built model
    (plus ``config.pbtxt`` when given) and return its ModelSource."""
    model_dir = root / name
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    filename = "model.savedmodel" if model.is_dir() else "model.graphdef"
    target = version_dir / filename
    if not target.exists():
        target.symlink_to(model, target_is_directory=model.is_dir())
    if config is not None:
        (model_dir / "config.pbtxt").write_text(config)
    return ModelSource(name=name, version=version, model_dir=model_dir, version_dir=version_dir, model_file=target)


def cpu_placement(index: int = 0) -> InstancePlacement:
    return InstancePlacement(name=f"instance_{index}", kind="CPU", device_id=0, group_name="group", index=index)


@pytest.fixture
def config_from() -> Callable[[str], Any]:
    """Parse protobuf text into a ModelConfig."""
    return parse_config


@pytest.fixture
def model_link(tmp_path: Path) -> Callable[..., ModelSource]:
    """``model_link(name, built_model, version=1, config=None) -> ModelSource`` under ``tmp_path``."""

    def link(name: str, model: Path, **kwargs: Any) -> ModelSource:
        return link_model(tmp_path, name, model, **kwargs)

    return link


@pytest.fixture
def placement() -> Callable[[int], InstancePlacement]:
    return cpu_placement


@pytest.fixture
def backend() -> Any:
    from tritium_backend_tf import TensorFlowBackend

    return TensorFlowBackend({})


@pytest.fixture
def load(backend: Any) -> Iterator[Callable[..., Any]]:
    """``load(source, config, complete=True) -> (config, instance)``: auto-complete, normalize as the kernel
    does, create an instance; instances are closed after the test."""
    from tritium.config import normalize_model_config

    instances: list[Any] = []

    def run(source: ModelSource, config: Any | None = None, *, complete: bool = True) -> tuple[Any, Any]:
        config = config if config is not None else parse_config()
        config.name = config.name or source.name
        config.backend = config.backend or "tensorflow"
        if not config.platform:
            config.platform = "tensorflow_graphdef" if source.model_file.is_file() else "tensorflow_savedmodel"
        if complete:
            config = backend.auto_complete_config(source, config)
        config = normalize_model_config(config, model_name=source.name, source=str(source.model_dir))
        instance = backend.create_instance(source, config, cpu_placement())
        instances.append(instance)
        return config, instance

    yield run
    for instance in instances:
        instance.close()


@pytest.fixture
def init_ops_json() -> Callable[[Path, list[str]], Path]:
    def write(folder: Path, ops: list[str]) -> Path:
        path = folder / "init_ops.json"
        path.write_text(json.dumps({"init_ops": ops}))
        return path

    return write
