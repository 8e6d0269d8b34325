"""The ``onnxruntime`` backend: auto-completes configs from ONNX graphs and creates session-backed instances.

ONNX Runtime is imported only inside the methods that need it, so importing this module (and the plugin)
is cheap and works without ONNX Runtime installed; :meth:`OnnxBackend.availability` then says how to
install it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tritium import Backend, ConfigError, InstancePlacement, ModelInstance, ModelSource, TritiumError, install_command
from tritium.config import parse_int_value as parse_int
from tritium_backend_onnx._autocomplete import DEFAULT_MAX_BATCH_SIZE, auto_complete, validate
from tritium_backend_onnx._instance import OnnxInstance, runtime_error
from tritium_backend_onnx._providers import CPU, CUDA, select_providers
from tritium_backend_onnx._session import SessionSettings
from tritium_backend_onnx._signature import ModelSignature

if TYPE_CHECKING:
    from tritium.config import ModelConfig

BACKEND_NAME = "onnxruntime"
PLATFORM = "onnxruntime_onnx"
DEFAULT_MODEL_FILENAME = "model.onnx"
INSTALL_HINT = f"install onnxruntime ({install_command('tritium-backend-onnx', 'cpu')})"


class OnnxBackend(Backend):
    """Triton's onnxruntime backend. ``options`` are its ``--backend-config=onnxruntime,<key>=<value>``
    settings; ``default-max-batch-size`` (default 4) is the max_batch_size auto-complete gives a batchable
    model whose config sets none."""

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        options = dict(options or {})
        raw = options.get("default-max-batch-size")
        self.default_max_batch_size = (
            DEFAULT_MAX_BATCH_SIZE
            if raw is None
            else parse_int(raw, "--backend-config=onnxruntime,default-max-batch-size")
        )

    def availability(self) -> str | None:
        """None when onnxruntime (or onnxruntime-gpu) is importable, else how to install it."""
        return availability()

    def supports_gpu(self) -> bool:
        """True only with an ONNX Runtime build that has the CUDA execution provider: with the CPU build,
        instance groups that name no kind stay on the CPU even on a machine with GPUs."""
        import onnxruntime as ort

        return CUDA in ort.get_available_providers()

    def auto_complete_config(self, source: ModelSource, config: ModelConfig) -> ModelConfig:
        """Fill inputs, outputs, max_batch_size and dynamic batching from the graph (Triton's rules)."""
        path = model_path(source)
        if not path.is_file():
            return config  # no model file yet: nothing to learn from; loading reports the missing file
        settings = SessionSettings.from_config(config)
        session = _create_session(
            path, settings, [(CPU, {})], graph_level="ORT_DISABLE_ALL", op_libraries=_op_libraries(config)
        )
        signature = ModelSignature.from_session(session)
        del session
        return auto_complete(
            config, signature, model_name=source.name, default_max_batch_size=self.default_max_batch_size
        )

    def create_instance(
        self, source: ModelSource, config: ModelConfig, placement: InstancePlacement
    ) -> ModelInstance:
        """One InferenceSession on the placement's device, checked against the config."""
        import onnxruntime as ort

        path = model_path(source)
        if not path.is_file():
            raise TritiumError.unavailable(
                f"unable to find '{path}' for model instance '{placement.name}' of model '{source.name}'"
            )
        settings = SessionSettings.from_config(config)
        available = ort.get_available_providers()
        providers = select_providers(
            config, kind=placement.kind, device_id=placement.device_id, available=available
        )
        session = _create_session(path, settings, providers, op_libraries=_op_libraries(config))
        signature = ModelSignature.from_session(session)
        validate(config, signature, model_name=source.name)
        return OnnxInstance(
            session,
            model_name=source.name,
            config=config,
            signature=signature,
            run_options=settings.run_options(),
        )


def availability() -> str | None:
    """None when onnxruntime (or onnxruntime-gpu) can be imported, else how to install it."""
    return None if importlib.util.find_spec("onnxruntime") is not None else INSTALL_HINT


def model_path(source: ModelSource) -> Path:
    """The ONNX file of a model version: ``model_file``, or ``model_file/model.onnx`` when that is a
    directory (a model whose weights live in external data files beside it)."""
    path = Path(source.model_file)
    return path / DEFAULT_MODEL_FILENAME if path.is_dir() else path


def _op_libraries(config: ModelConfig) -> tuple[str, ...]:
    if not config.HasField("model_operations"):
        return ()
    return tuple(str(name) for name in config.model_operations.op_library_filename)


def _create_session(
    path: Path,
    settings: SessionSettings,
    providers: list[tuple[str, dict[str, str]]],
    *,
    graph_level: str | None = None,
    op_libraries: tuple[str, ...] = (),
) -> Any:
    import onnxruntime as ort

    options = settings.session_options()
    if graph_level is not None:
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, graph_level)
    for library in op_libraries:
        options.register_custom_ops_library(library)
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except (ConfigError, TritiumError):
        raise
    except Exception as exc:
        error = runtime_error(exc)
        raise TritiumError(error.code, f"failed to load '{path}': {error.message}") from exc
