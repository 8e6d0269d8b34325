"""The ``tensorrt`` backend: TensorRT 10 engines (``model.plan``) on NVIDIA GPUs, as Triton serves them.

TensorRT and the CUDA binding are imported when the first model loads (``default_loader``). Tests hand the
backend a ``loader`` returning a test double of the same API surface instead.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from tritium import Backend, ConfigError, DataType, InstancePlacement, ModelInstance, ModelSource, TritiumError
from tritium_backend_tensorrt._autocomplete import complete_config
from tritium_backend_tensorrt._availability import availability as default_availability
from tritium_backend_tensorrt._cuda import DeviceApi
from tritium_backend_tensorrt._engine import EngineInfo
from tritium_backend_tensorrt._instance import TensorRTInstance
from tritium_backend_tensorrt._profiles import instance_profiles
from tritium_backend_tensorrt._settings import BackendSettings, ModelSettings

if TYPE_CHECKING:
    from tritium.config import ModelConfig

_log = logging.getLogger("tritium.backend.tensorrt")

BACKEND_NAME = "tensorrt"
PLATFORM = "tensorrt_plan"
MODEL_FILENAME = "model.plan"
_KIND_CPU = 2

Loader = Callable[[], tuple[Any, DeviceApi]]


def default_loader() -> tuple[Any, DeviceApi]:
    """Import TensorRT (10 or newer) and the CUDA runtime binding."""
    reason = default_availability()
    if reason is not None:
        raise TritiumError.unavailable(f"backend '{BACKEND_NAME}' is unavailable: {reason}")
    import tensorrt

    major = int(str(tensorrt.__version__).split(".", 1)[0])
    if major < 10:
        raise TritiumError.unavailable(
            f"the tensorrt backend needs TensorRT 10 or newer (named I/O tensors); found {tensorrt.__version__}"
        )
    from tritium_backend_tensorrt._cuda import CudaRuntime

    return tensorrt, CudaRuntime()


def _make_logger(trt: Any) -> Any:
    """A TensorRT logger forwarding to Python logging and remembering the last error (for load errors)."""

    class _Logger(trt.ILogger):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.last_error = ""

        def log(self, severity: Any, msg: str) -> None:
            name = getattr(severity, "name", str(severity))
            if name in ("INTERNAL_ERROR", "ERROR"):
                self.last_error = msg
                _log.error("TensorRT: %s", msg)
            elif name == "WARNING":
                _log.warning("TensorRT: %s", msg)
            else:
                _log.debug("TensorRT: %s", msg)

    return _Logger()


class _Runtime:
    """TensorRT's module, logger and ``Runtime``, and the CUDA binding: created once per backend."""

    def __init__(self, trt: Any, device: DeviceApi, settings: BackendSettings) -> None:
        self.trt = trt
        self.device = device
        self.logger = _make_logger(trt)
        for library in settings.plugins:
            try:
                ctypes.CDLL(library)
            except OSError as exc:
                raise TritiumError.invalid_arg(f"unable to load TensorRT plugin library '{library}': {exc}") from None
        trt.init_libnvinfer_plugins(self.logger, "")
        self.runtime = trt.Runtime(self.logger)
        if settings.version_compatible:
            self.runtime.engine_host_code_allowed = True
        self.lock = threading.Lock()

    def deserialize(self, path: Path, device_id: int) -> Any:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TritiumError.internal(f"unable to read TensorRT plan '{path}': {exc.strerror}") from None
        with self.lock:
            self.device.set_device(device_id)
            self.logger.last_error = ""
            engine = self.runtime.deserialize_cuda_engine(data)
        if engine is None:
            detail = self.logger.last_error or "not a TensorRT engine, or built by another TensorRT version"
            raise TritiumError.internal(f"unable to create TensorRT engine from '{path}': {detail}")
        return engine


@attrs.define(slots=True)
class _SharedEngine:
    engine: Any
    info: EngineInfo
    users: int = 0


EngineKey = tuple[str, int, int, int]


class _EngineCache:
    """One deserialized engine per plan file (as it is on disk now) and GPU, shared by the instances of the
    model on that GPU as Triton shares them; dropped when its last instance closes. A reload with a changed
    file gets a new engine while instances of the old version still hold theirs."""

    def __init__(self, runtime: _Runtime) -> None:
        self._runtime = runtime
        self._lock = threading.Lock()
        self._engines: dict[EngineKey, _SharedEngine] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._engines)

    def acquire(self, path: Path, device_id: int) -> tuple[EngineKey, Any, EngineInfo]:
        try:
            stat = path.stat()
        except OSError as exc:
            raise TritiumError.internal(f"unable to read TensorRT plan '{path}': {exc.strerror}") from None
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, device_id)
        with self._lock:
            shared = self._engines.get(key)
            if shared is None:
                engine = self._runtime.deserialize(path, device_id)
                shared = self._engines[key] = _SharedEngine(engine, EngineInfo.read(engine))
            shared.users += 1
            return key, shared.engine, shared.info

    def release(self, key: EngineKey) -> None:
        with self._lock:
            shared = self._engines.get(key)
            if shared is not None:
                shared.users -= 1
                if shared.users <= 0:
                    del self._engines[key]


def _plan_file(source: ModelSource, config: ModelConfig, device: DeviceApi, device_id: int) -> Path:
    """The version's plan file: ``cc_model_filenames`` for the GPU's compute capability, else the default."""
    if len(config.cc_model_filenames):
        capability = device.compute_capability(device_id)
        if capability in config.cc_model_filenames:
            return source.version_dir / config.cc_model_filenames[capability]
    return source.model_file


def _dims_text(dims: Any) -> str:
    return "[" + ",".join(str(int(d)) for d in dims) + "]"


def check_config(config: ModelConfig, info: EngineInfo) -> None:
    """The model config and the engine agree (auto-complete may have been off); ConfigError otherwise.
    Also refuses what this backend does not serve: shape tensors, non-linear formats, unmapped types."""
    name = config.name
    for engine_tensor in info.tensors:
        if engine_tensor.is_shape_tensor:
            raise ConfigError(
                f"unable to load model '{name}': '{engine_tensor.name}' is a shape tensor; engines with shape tensors "
                "are not supported by Tritium's tensorrt backend"
            )
        if not engine_tensor.linear_format:
            raise ConfigError(
                f"unable to load model '{name}': '{engine_tensor.name}' uses a non-linear I/O format, which Tritium's "
                "tensorrt backend does not support"
            )
        if engine_tensor.datatype is None:
            raise ConfigError(
                f"unable to load model '{name}': tensor '{engine_tensor.name}' has TensorRT type "
                f"{engine_tensor.trt_type}, which has no Triton datatype"
            )
    batching = config.max_batch_size > 0
    for kind, configured, engine_tensors in (
        ("input", config.input, info.inputs),
        ("output", config.output, info.outputs),
    ):
        by_name = {t.name: t for t in engine_tensors}
        for tensor in configured:
            ref = by_name.get(tensor.name)
            if ref is None:
                raise ConfigError(
                    f"unable to load model '{name}': unexpected inference {kind} '{tensor.name}', allowed "
                    f"{kind}s are: {', '.join(by_name)}"
                )
            assert ref.datatype is not None
            if tensor.data_type != ref.datatype.config_enum:
                configured_type = DataType.from_config_enum(tensor.data_type) if tensor.data_type else None
                raise ConfigError(
                    f"unable to load model '{name}', binding '{tensor.name}' data-type "
                    f"{ref.datatype.value} doesn't match configuration data-type "
                    f"{configured_type.value if configured_type else 'TYPE_INVALID'}"
                )
            dims = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
            expected = list(ref.shape[1:] if batching else ref.shape)
            if batching and not ref.shape:
                raise ConfigError(
                    f"unable to load model '{name}', binding '{tensor.name}' has no batch dimension but the "
                    f"configuration sets max_batch_size {config.max_batch_size}"
                )
            if len(dims) != len(expected) or any(
                c != e and c != -1 and e != -1 for c, e in zip(dims, expected, strict=True)
            ):
                raise ConfigError(
                    f"unable to load model '{name}', binding '{tensor.name}' shape expected by framework "
                    f"{_dims_text(ref.shape)} doesn't match model configuration shape {_dims_text(dims)}"
                )
        configured_names = {t.name for t in configured}
        if kind == "input":
            for ref in engine_tensors:
                if ref.name not in configured_names:
                    raise ConfigError(
                        f"unable to load model '{name}': engine input '{ref.name}' is missing from the model "
                        "configuration"
                    )


def check_profile_shapes(config: ModelConfig, info: EngineInfo, profiles: tuple[int, ...]) -> None:
    """Fixed dims of the config's inputs lie inside each profile's [min, max] (the batch dimension is free:
    a profile allowing smaller batches than ``max_batch_size`` only refuses the larger ones at run time)."""
    batching = config.max_batch_size > 0
    for tensor in config.input:
        dims = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
        full = [-1, *dims] if batching else dims
        for profile in profiles:
            allowed = info.profiles[profile].get(tensor.name)
            if allowed is None or len(allowed.max) != len(full):
                continue
            for index, (low, dim, high) in enumerate(zip(allowed.min, full, allowed.max, strict=True)):
                if dim != -1 and not low <= dim <= high:
                    raise ConfigError(
                        f"model configuration specified invalid shape for input '{tensor.name}' for model "
                        f"{config.name}. Error details: model expected the shape of dimension {index} to be "
                        f"between {low} and {high} but received {dim} (optimization profile {profile})"
                    )


class TensorRTBackend(Backend):
    """Serves ``tensorrt_plan`` models: GPU instances only, as in Triton."""

    def __init__(
        self,
        options: Mapping[str, str],
        *,
        loader: Loader | None = None,
        availability_check: Callable[[], str | None] | None = None,
    ) -> None:
        self.settings = BackendSettings.from_options(options)
        self._loader = loader or default_loader
        self._availability = availability_check or default_availability
        self._runtime: _Runtime | None = None
        self._engines: _EngineCache | None = None
        self._lock = threading.Lock()

    def availability(self) -> str | None:
        return self._availability()

    def supports_gpu(self) -> bool:
        """TensorRT runs on GPUs only: instance groups naming no kind go to the GPUs (as Triton places them)."""
        return True

    def _load_runtime(self) -> _Runtime:
        with self._lock:
            if self._runtime is None:
                trt, device = self._loader()
                self._runtime = _Runtime(trt, device, self.settings)
                self._engines = _EngineCache(self._runtime)
            return self._runtime

    def auto_complete_config(self, source: ModelSource, config: ModelConfig) -> ModelConfig:
        groups = list(config.instance_group)
        if groups and groups[0].kind == _KIND_CPU:
            return config  # Triton completes only models placed on a GPU; loading will refuse this one
        runtime = self._load_runtime()
        device_id = int(groups[0].gpus[0]) if groups and len(groups[0].gpus) else 0
        path = _plan_file(source, config, runtime.device, device_id)
        if not path.is_file():
            return config
        engine = runtime.deserialize(path, device_id)
        try:
            return complete_config(config, EngineInfo.read(engine))
        finally:
            del engine

    def create_instance(
        self, source: ModelSource, config: ModelConfig, placement: InstancePlacement
    ) -> ModelInstance:
        if placement.kind != "GPU":
            raise TritiumError.invalid_arg(
                f"unable to load model '{config.name}', TensorRT backend supports only GPU device "
                f"(instance group '{placement.group_name}' is placed on the {placement.kind})"
            )
        settings = ModelSettings.from_config(config)
        runtime = self._load_runtime()
        path = _plan_file(source, config, runtime.device, placement.device_id)
        assert self._engines is not None
        key, engine, info = self._engines.acquire(path, placement.device_id)
        try:
            check_config(config, info)
            profiles = instance_profiles(config, placement.group_name, len(info.profiles))
            check_profile_shapes(config, info, profiles)
            return TensorRTInstance(
                name=placement.name,
                engine=engine,
                info=info,
                trt=runtime.trt,
                device=runtime.device,
                device_id=placement.device_id,
                profiles=profiles,
                settings=settings,
                max_batch_size=int(config.max_batch_size),
                release=lambda: self._release(key),
            )
        except BaseException:
            self._release(key)
            raise

    def _release(self, key: EngineKey) -> None:
        if self._engines is not None:
            self._engines.release(key)

    @property
    def shared_engines(self) -> int:
        """How many deserialized engines instances hold now (one per plan file and GPU)."""
        return len(self._engines) if self._engines is not None else 0
