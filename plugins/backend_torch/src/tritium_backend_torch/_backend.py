"""The ``pytorch`` backend: TorchScript ``model.pt`` (platform ``pytorch_libtorch``) and AOTInductor
``model.pt2`` (platform ``torch_aoti``) models, as Triton's PyTorch backend serves them.

PyTorch is imported only when a model loads, so importing this module is cheap and works without torch
installed (:meth:`TorchBackend.availability` then says how to install it).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tritium import Backend, ConfigError, DataType, InstancePlacement, ModelInstance, ModelSource, TritiumError
from tritium_backend_torch import _aoti
from tritium_backend_torch._autocomplete import complete_from_package
from tritium_backend_torch._datatypes import is_supported, to_tensor
from tritium_backend_torch._device import Device
from tritium_backend_torch._instance import AotiInstance, ScriptInstance, TensorPlan
from tritium_backend_torch._naming import bind_inputs, bind_outputs
from tritium_backend_torch._parameters import TorchParameters
from tritium_backend_torch._torchscript import ScriptSignature, SharedModules, load_module

if TYPE_CHECKING:
    from tritium.config import ModelConfig

BACKEND_NAME = "pytorch"
LIBTORCH_PLATFORM = "pytorch_libtorch"
AOTI_PLATFORM = "torch_aoti"
PLATFORMS = (LIBTORCH_PLATFORM, AOTI_PLATFORM, "libtorch")
DEFAULT_MODEL_FILENAME = "model.pt"
AOTI_MODEL_FILENAME = "model.pt2"
INSTALL_HINT = "install torch (pip install 'tritium-backend-torch[cpu]', or '[gpu]' for a CUDA build)"
AOTI_AUTO_COMPLETE_OPTION = "aoti-auto-complete"
OMP_WAIT_POLICY = "OMP_WAIT_POLICY"

_log = logging.getLogger("tritium_backend_torch")


class TorchBackend(Backend):
    """Triton's pytorch backend. ``options`` are its ``--backend-config=pytorch,<key>=<value>`` settings:
    ``aoti-auto-complete=true`` lets auto-complete fill the inputs and outputs of ``torch_aoti`` models from
    their package (Triton auto-completes no PyTorch model; off by default)."""

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        options = dict(options or {})
        raw = options.get(AOTI_AUTO_COMPLETE_OPTION, "false").strip().lower()
        if raw not in ("true", "on", "1", "false", "off", "0"):
            raise ConfigError(
                f"--backend-config=pytorch,{AOTI_AUTO_COMPLETE_OPTION} must be true or false, got '{raw}'"
            )
        self.aoti_auto_complete = raw in ("true", "on", "1")
        self._shared = SharedModules()
        self._threads_lock = threading.Lock()
        self._intra_op_set = False
        self._inter_op_set = False

    @property
    def shared_modules(self) -> SharedModules:
        """Modules shared by instances under ``ENABLE_WEIGHT_SHARING``."""
        return self._shared

    def availability(self) -> str | None:
        """None when torch is importable, else how to install it."""
        return availability()

    def supports_gpu(self) -> bool:
        """Whether this PyTorch can use a CUDA device here (a CUDA build on a machine with a GPU): instance
        groups that name no kind then go to the GPUs (imports torch)."""
        if availability() is not None:
            return False
        _before_importing_torch()
        import torch

        try:
            return bool(torch.cuda.is_available())
        except Exception:  # a broken CUDA setup is no GPU for this backend
            return False

    def auto_complete_config(self, source: ModelSource, config: ModelConfig) -> ModelConfig:
        """Triton auto-completes no PyTorch model: the config comes back unchanged (with Triton's warning),
        unless ``aoti-auto-complete`` is on and the model is a ``torch_aoti`` package."""
        if config.platform == AOTI_PLATFORM and self.aoti_auto_complete:
            path = Path(source.model_file)
            if not path.is_file():
                return config
            _before_importing_torch()
            return complete_from_package(config, path, model_name=source.name)
        _log.warning(
            "skipping model configuration auto-complete for '%s': not supported for pytorch backend", source.name
        )
        return config

    def create_instance(
        self, source: ModelSource, config: ModelConfig, placement: InstancePlacement
    ) -> ModelInstance:
        """One instance on the placement's device: a TorchScript module or an AOTInductor package."""
        _before_importing_torch()
        name = source.name
        aoti = config.platform == AOTI_PLATFORM
        _check_tensors(config, name, aoti=aoti)
        parameters = TorchParameters.from_config(config)
        self._set_thread_counts(parameters)
        path = Path(source.model_file)
        if not path.is_file():
            raise TritiumError.unavailable(f"unable to find '{path}' for model instance '{placement.name}'")
        device = Device.for_placement(placement, name)
        common: dict[str, Any] = {
            "model_name": name,
            "batching": config.max_batch_size > 0,
            "device": device,
            "parameters": parameters,
        }
        if aoti:
            return _aoti_instance(path, config, common)
        return self._script_instance(path, config, common)

    def _script_instance(self, path: Path, config: ModelConfig, common: dict[str, Any]) -> ModelInstance:
        name = common["model_name"]
        device = common["device"].torch_device
        key = None
        if common["parameters"].weight_sharing:
            module, key = self._shared.acquire(path, device, name)
            common["on_close"] = lambda: self._shared.release(key)
        else:
            module = load_module(path, device, name)
        try:
            signature = ScriptSignature.of(module)
            inputs = bind_inputs(
                name, [t.name for t in config.input], signature.arguments, dict_input=signature.dict_input
            )
            outputs = bind_outputs(name, [t.name for t in config.output])
        except Exception:
            if key is not None:
                self._shared.release(key)
            raise
        return ScriptInstance(
            module,
            convention=inputs.convention,
            argument_count=len(signature.arguments),
            inputs=_plans(config.input, inputs.positions),
            outputs=_plans(config.output, outputs.positions),
            **common,
        )

    def _set_thread_counts(self, parameters: TorchParameters) -> None:
        """Intra/inter-op thread counts are process-wide: the first model that sets them wins (Triton's rule)."""
        if parameters.intra_op_threads is None and parameters.inter_op_threads is None:
            return
        import torch

        with self._threads_lock:
            if parameters.intra_op_threads is not None and not self._intra_op_set:
                torch.set_num_threads(parameters.intra_op_threads)
                self._intra_op_set = True
            if parameters.inter_op_threads is not None and not self._inter_op_set:
                self._inter_op_set = True
                try:
                    torch.set_num_interop_threads(parameters.inter_op_threads)
                except RuntimeError as exc:  # only possible before any inter-op work started
                    _log.warning("INTER_OP_THREAD_COUNT not applied: %s", exc)


def _before_importing_torch() -> None:
    """Let idle OpenMP workers sleep instead of spinning (unless the user chose): PyTorch's intra-op workers
    otherwise busy-wait after every operator and starve the server's event loop, which shares the cores
    (measured in bench/RESULTS.md). OpenMP reads this once, when torch is first imported."""
    os.environ.setdefault(OMP_WAIT_POLICY, "PASSIVE")


def availability() -> str | None:
    """None when torch can be imported, else how to install it."""
    return None if importlib.util.find_spec("torch") is not None else INSTALL_HINT


def _aoti_instance(path: Path, config: ModelConfig, common: dict[str, Any]) -> ModelInstance:
    name = common["model_name"]
    device: Device = common["device"]
    _aoti.enable_input_checks()
    compiled = _aoti.load_package(path, device.torch_device, name)
    spec = _aoti.call_spec(compiled)
    input_positions = spec.bind("input", name, [t.name for t in config.input])
    output_positions = spec.bind("output", name, [t.name for t in config.output])
    inputs = _plans(config.input, input_positions)
    probes: list[Any] = [None] * len(spec.inputs)
    for tensor, plan in zip(config.input, inputs, strict=True):
        probes[plan.position] = _zeros(tensor, plan.datatype, config.max_batch_size > 0, device)
    with device.running():
        _aoti.probe_datatypes(compiled.loader.run, probes, {p.position: p.name for p in inputs}, name)
    device.synchronize()
    return AotiInstance(
        compiled,
        leaf_count=len(spec.inputs),
        inputs=inputs,
        outputs=_plans(config.output, output_positions),
        **common,
    )


def _zeros(tensor: Any, datatype: DataType, batching: bool, device: Device) -> Any:
    import numpy as np

    dims = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
    shape = ([1] if batching else []) + [int(d) if d > 0 else 1 for d in dims]
    return to_tensor(np.zeros(shape, dtype=datatype.numpy_dtype), device.torch_device)


def _plans(tensors: Sequence[Any], positions: Mapping[str, int]) -> list[TensorPlan]:
    plans = []
    for tensor in tensors:
        plans.append(TensorPlan(tensor.name, positions[tensor.name], DataType.from_config_enum(tensor.data_type)))
    return plans


def _check_tensors(config: ModelConfig, model_name: str, *, aoti: bool) -> None:
    """Triton's load-time checks of the config's tensors: supported datatypes, 1-D strings only."""
    batching = config.max_batch_size > 0
    for kind, tensors in (("input", config.input), ("output", config.output)):
        for tensor in tensors:
            datatype = DataType.from_config_enum(tensor.data_type)
            if not is_supported(datatype) or (aoti and datatype is DataType.BYTES):
                raise ConfigError(
                    f"unsupported datatype {datatype.config_name} for {kind} '{tensor.name}' for model '{model_name}'"
                )
            if datatype is DataType.BYTES:
                dims = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
                if len(dims) + (1 if batching else 0) > 1:
                    raise ConfigError(
                        f"Triton only supports 1 dimensional List of String as {kind} for '{tensor.name}' "
                        f"for model '{model_name}'"
                    )
