"""The ``tensorflow`` backend: SavedModels and GraphDefs, auto-completed from SavedModel signatures.

TensorFlow takes seconds to import, so nothing here imports it at module level: auto-complete reads
``saved_model.pb`` with the protobuf runtime alone (:mod:`tritium_backend_tf._savedmodel_file`), and
TensorFlow is imported by the first :meth:`TensorFlowBackend.create_instance`, inside the kernel's timing of
the model load, so its cost shows in ``nv_model_load_duration_secs`` of the first TensorFlow model and is
logged with the load.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from tritium import (
    Backend,
    ConfigError,
    InstancePlacement,
    ModelInstance,
    ModelSource,
    TritiumError,
    visible_gpu_count,
)
from tritium_backend_tf._autocomplete import auto_complete, validate
from tritium_backend_tf._instance import SharedSession, TensorFlowInstance
from tritium_backend_tf._savedmodel_file import SavedModelFile
from tritium_backend_tf._session import (
    check_device,
    device_of,
    load_graphdef,
    load_savedmodel,
    quiet_deprecation_notes,
    session_config,
)
from tritium_backend_tf._settings import BackendSettings, ModelSettings, read_init_ops
from tritium_backend_tf._signature import savedmodel_signature

if TYPE_CHECKING:
    from tritium.config import ModelConfig

BACKEND_NAME = "tensorflow"
SAVEDMODEL_PLATFORM = "tensorflow_savedmodel"
GRAPHDEF_PLATFORM = "tensorflow_graphdef"
SAVEDMODEL_FILENAME = "model.savedmodel"
GRAPHDEF_FILENAME = "model.graphdef"
INSTALL_HINT = "install TensorFlow (pip install 'tritium-backend-tf[cpu]')"

_log = logging.getLogger("tritium.backend.tensorflow")


class TensorFlowBackend(Backend):
    """Triton's TensorFlow backend. ``options`` are its ``--backend-config=tensorflow,<key>=<value>``
    settings (see :class:`tritium_backend_tf._settings.BackendSettings`)."""

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        self.settings = BackendSettings.from_options(dict(options or {}))
        self.import_seconds: float | None = None
        """How long importing TensorFlow took, once it was imported by this backend (None before)."""
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, ...], tuple[int, SharedSession]] = {}

    def availability(self) -> str | None:
        """None when TensorFlow (tensorflow or tensorflow-cpu) is installed, else how to install it."""
        return availability()

    def supports_gpu(self) -> bool:
        """Whether instance groups that name no kind may go to a GPU: a GPU is visible and the installed
        TensorFlow is a GPU-capable build (``tensorflow``, not ``tensorflow-cpu``). Imports nothing."""
        return availability() is None and visible_gpu_count() > 0 and not _cpu_only_build()

    # ------------------------------------------------------------------------------------ auto-complete
    def auto_complete_config(self, source: ModelSource, config: ModelConfig) -> ModelConfig:
        """Fill inputs, outputs, max_batch_size and dynamic batching from a SavedModel's signature (Triton's
        rules); a GraphDef has no signature and is returned as it is."""
        config = _with_platform(source, config)
        if config.platform != SAVEDMODEL_PLATFORM:
            return config
        path = Path(source.model_file)
        if not (path / "saved_model.pb").is_file():
            return config  # nothing to learn from; loading reports the missing model
        settings = ModelSettings.from_config(config)
        _, _, signature = savedmodel_signature(
            SavedModelFile.read(path), tag=settings.graph_tag, signature=settings.signature_def, path=str(path)
        )
        return auto_complete(
            config, signature, model_name=source.name,
            default_max_batch_size=self.settings.default_max_batch_size,
        )

    # ----------------------------------------------------------------------------------------- loading
    def create_instance(
        self, source: ModelSource, config: ModelConfig, placement: InstancePlacement
    ) -> ModelInstance:
        """A session on the placement's device (shared per ``MAX_SESSION_SHARE_COUNT``), checked against
        the config."""
        config = _with_platform(source, config)  # again: auto-complete may have been off
        platform = config.platform or _platform_of(Path(source.model_file))
        if platform not in (SAVEDMODEL_PLATFORM, GRAPHDEF_PLATFORM):
            raise ConfigError(f"platform {platform} not supported for TensorFlow model '{source.name}'")
        path = Path(source.model_file)
        if config.default_model_filename == GRAPHDEF_FILENAME and path.name != GRAPHDEF_FILENAME:
            path = Path(source.version_dir) / GRAPHDEF_FILENAME
            source = attrs.evolve(source, model_file=path)
        if not path.exists():
            raise TritiumError.unavailable(
                f"unable to find '{path}' for model instance '{placement.name}' of model '{source.name}'"
            )
        if platform == GRAPHDEF_PLATFORM and not len(config.output):
            raise ConfigError(
                f"unable to load model '{source.name}': a GraphDef carries no signature, so its config.pbtxt must "
                "list the inputs and outputs (Triton cannot auto-complete GraphDef models either)"
            )
        settings = ModelSettings.from_config(config)
        tf = self._tensorflow(source.name)
        check_device(tf, placement)
        shared = self._session(tf, source, config, settings, placement, platform)
        try:
            validate(config, shared.signature, model_name=source.name)
            return TensorFlowInstance(shared.acquire(), model_name=source.name, config=config)
        except BaseException:
            self._forget(shared)
            raise

    def _session(
        self, tf: Any, source: ModelSource, config: ModelConfig, settings: ModelSettings,
        placement: InstancePlacement, platform: str,
    ) -> SharedSession:
        """A session for this instance: a free share of an existing one on the same device, or a new one."""
        device = device_of(placement)
        key = (
            str(source.version_dir), device, config.SerializeToString(deterministic=True).hex(),
            _files_stamp(Path(source.model_file)),
        )
        with self._lock:
            entry = self._sessions.get(key)
            if entry is not None and entry[0] < settings.max_session_share_count:
                self._sessions[key] = (entry[0] + 1, entry[1])
                return entry[1]
        started = time.perf_counter()
        proto = session_config(tf, self.settings, settings, placement)
        path = Path(source.model_file)
        if platform == SAVEDMODEL_PLATFORM:
            session, signature = load_savedmodel(tf, path, settings, proto, device)
        else:
            init_ops = (
                read_init_ops(settings.init_ops_file, version_dir=source.version_dir, model_dir=source.model_dir)
                if settings.init_ops_file else ()
            )
            session, signature = load_graphdef(tf, path, config, proto, device, init_ops)
        shared = SharedSession(session, signature, on_close=self._drop)
        _log.info(
            "loaded TensorFlow %s '%s' for instance '%s' on %s in %.2f s",
            "SavedModel" if platform == SAVEDMODEL_PLATFORM else "GraphDef", path, placement.name, device,
            time.perf_counter() - started,
        )
        with self._lock:
            self._sessions[key] = (1, shared)
        return shared

    def _forget(self, shared: SharedSession) -> None:
        """After a failed instance: close the session unless other instances hold it."""
        self._drop(shared)
        shared.acquire().release()

    def _drop(self, shared: SharedSession) -> None:
        """No new instance may share ``shared`` any more (it failed or is closing)."""
        with self._lock:
            for key, (_, candidate) in list(self._sessions.items()):
                if candidate is shared:
                    del self._sessions[key]

    def _tensorflow(self, model_name: str) -> Any:
        """The ``tensorflow`` module, imported (and timed, and logged) on first use."""
        module = sys.modules.get("tensorflow")
        if module is not None and self.import_seconds is not None:
            return module
        if availability() is not None:
            raise TritiumError.unavailable(f"backend 'tensorflow' is unavailable: {INSTALL_HINT}")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's C++ INFO lines, unless the user chose
        started = time.perf_counter()
        already = module is not None
        module = importlib.import_module("tensorflow")
        elapsed = time.perf_counter() - started
        quiet_deprecation_notes()
        with self._lock:
            first = self.import_seconds is None
            if first:
                self.import_seconds = elapsed
        if first:
            if already:
                _log.info("TensorFlow %s was already imported by this process", module.__version__)
            else:
                _log.info(
                    "imported TensorFlow %s in %.2f s while loading model '%s' (counted in its load duration)",
                    module.__version__, elapsed, model_name,
                )
        return module

    # -------------------------------------------------------------------------------------- unloading
    def sessions_open(self) -> int:
        """How many sessions are listed for sharing (for tests and diagnostics)."""
        with self._lock:
            return len(self._sessions)


def _cpu_only_build() -> bool:
    """Whether the installed TensorFlow is the CPU-only distribution (``tensorflow-cpu``)."""
    try:
        importlib.metadata.distribution("tensorflow-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def availability() -> str | None:
    """None when TensorFlow can be imported, else how to install it; imports nothing."""
    return None if importlib.util.find_spec("tensorflow") is not None else INSTALL_HINT


def _files_stamp(path: Path) -> str:
    """Sizes and modification times of a model's files: a session is shared only with instances of the same
    files (a reload after the files changed must not reuse the previous version's session)."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    parts = []
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            continue
        parts.append(f"{file}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(parts)


def _platform_of(path: Path) -> str:
    return SAVEDMODEL_PLATFORM if path.is_dir() else GRAPHDEF_PLATFORM


def _with_platform(source: ModelSource, config: ModelConfig) -> ModelConfig:
    """The kernel fills ``platform`` with the backend's first platform (``tensorflow_savedmodel``, and
    normalization then ``default_model_filename``) when the config names none; a version folder holding only
    ``model.graphdef`` is a GraphDef model, as Triton's rules say. Returns a copy with platform and
    ``default_model_filename`` set right in that case."""
    if config.platform != SAVEDMODEL_PLATFORM or config.default_model_filename not in ("", SAVEDMODEL_FILENAME):
        return config
    version_dir = Path(source.version_dir)
    if (version_dir / SAVEDMODEL_FILENAME).exists() or not (version_dir / GRAPHDEF_FILENAME).is_file():
        return config
    fixed = type(config)()
    fixed.CopyFrom(config)
    fixed.platform = GRAPHDEF_PLATFORM
    fixed.default_model_filename = GRAPHDEF_FILENAME
    return fixed
