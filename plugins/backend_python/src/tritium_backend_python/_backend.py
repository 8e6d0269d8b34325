"""The Python backend: Triton's ``backend: "python"`` models, ``<version>/model.py`` with ``TritonPythonModel``."""

from __future__ import annotations

import itertools
import json
import re
import sys
import threading
from collections.abc import Mapping

import tritium
from tritium import ConfigError, DataType
from tritium.config import ModelConfig, is_decoupled, model_config_from_json, model_config_to_json
from tritium_backend_python._bls import BlsBridge
from tritium_backend_python._channel import ChannelClosed, ChannelTimeout
from tritium_backend_python._environment import Interpreters
from tritium_backend_python._inprocess import InProcessInstance
from tritium_backend_python._isolated import InstanceSpec, IsolatedInstance
from tritium_backend_python._runner import ModelLoadError, auto_complete, load_model_class
from tritium_backend_python._settings import ModelSettings, model_settings
from tritium_backend_python._stub_process import Polling, StubProcess

BACKEND_NAME = "python"
MODEL_FILENAME = "model.py"


def pipeline_depth(config: ModelConfig, settings: ModelSettings) -> int:
    """Executions in flight per isolated instance: the setting, or 1 where the kernel forms batches while
    the instance is busy (dynamic or sequence batching) and for decoupled models (executed on a thread)."""
    if is_decoupled(config) or config.HasField("dynamic_batching") or config.HasField("sequence_batching"):
        return 1
    return settings.pipeline_depth


class PythonBackend(tritium.Backend):
    """Serves Python models; ``options`` are the ``--backend-config=python,<key>=<value>`` settings."""

    def __init__(self, options: Mapping[str, str]) -> None:
        self.options = dict(options)
        self._interpreters = Interpreters()
        self._modules = itertools.count(1)
        self._lock = threading.Lock()

    def availability(self) -> str | None:
        return None

    def _module_name(self, model_name: str) -> str:
        with self._lock:
            number = next(self._modules)
        return f"tritium_python_model_{re.sub(r'[^0-9A-Za-z_]', '_', model_name)}_{number}"

    # ----------------------------------------------------------------------------------- auto-complete
    def auto_complete_config(self, source: tritium.ModelSource, config: ModelConfig) -> ModelConfig:
        """Run the model's ``auto_complete_config(pb_utils.ModelConfig)`` (a static method of
        ``TritonPythonModel``), in a throw-away stub process (isolated mode) or in the server (in-process).

        Models without one keep their config as it is. The cheap test (does model.py mention
        ``auto_complete_config`` at all) spares a process start for most models.
        """
        model_file = source.model_file
        try:
            text = model_file.read_text(errors="replace") if model_file.is_file() else ""
        except OSError:
            text = ""
        if "auto_complete_config" not in text:
            return config
        name = config.name or source.name
        settings = model_settings(config, self.options)
        config_json = json.dumps(model_config_to_json(config))
        module_name = self._module_name(name)
        if settings.in_process:
            try:
                model_class = load_model_class(model_file, module_name)
                completed_json = auto_complete(model_class, config_json)
            except ModelLoadError as exc:
                raise ConfigError(f"model '{name}': {exc}") from None
            finally:
                sys.modules.pop(module_name, None)
        else:
            completed_json = self._auto_complete_in_stub(source, name, settings, module_name, config_json)
        completed = model_config_from_json(completed_json, source=str(model_file))
        return completed if completed != config else config

    def _auto_complete_in_stub(
        self, source: tritium.ModelSource, name: str, settings: ModelSettings, module_name: str, config_json: str
    ) -> str:
        interpreter = self._interpreters.for_model(settings.env_path, name, source.model_dir, settings.stub_timeout_s)
        label = f"model '{name}' (auto-complete)"
        try:
            stub = StubProcess(interpreter=interpreter, label=label, bridge=BlsBridge(None))
        except OSError as exc:
            raise ConfigError(f"model '{name}': cannot start a stub process with {interpreter}: {exc}") from None
        timeout = settings.stub_timeout_s
        try:
            reply = stub.exchange(("load", str(source.model_file), module_name, False), timeout)
            if reply[0] == "ok":
                reply = stub.exchange(("autocomplete", config_json), timeout)
            if reply[0] != "ok":
                raise ConfigError(f"model '{name}': {reply[1]}")
            return str(reply[1])
        except ChannelClosed:
            raise ConfigError(
                f"model '{name}': the stub process exited during auto-complete ({stub.exit_description()})"
            ) from None
        except ChannelTimeout:
            raise ConfigError(f"model '{name}': auto_complete_config took longer than {timeout:g} s") from None
        finally:
            stub.stop(timeout)

    # -------------------------------------------------------------------------------------- instances
    def create_instance(
        self, source: tritium.ModelSource, config: ModelConfig, placement: tritium.InstancePlacement
    ) -> tritium.ModelInstance:
        name = config.name or source.name
        settings = model_settings(config, self.options)
        model_file = source.model_file
        if not model_file.is_file():
            raise ConfigError(
                f"model '{name}': '{model_file}' not found; a Python model needs <version>/{MODEL_FILENAME} "
                "(or the file its default_model_filename names)"
            )
        args = {
            "model_config": json.dumps(model_config_to_json(config)),
            "model_instance_kind": placement.kind,
            "model_instance_name": placement.name,
            "model_instance_device_id": str(placement.device_id),
            "model_repository": str(source.model_dir),
            "model_version": str(source.version),
            "model_name": name,
        }
        input_types = {t.name: DataType.from_config_enum(t.data_type) for t in config.input if t.data_type}
        decoupled = is_decoupled(config)
        batching = config.max_batch_size > 0
        label = f"model '{name}' instance {placement.name}"
        bridge = BlsBridge(getattr(source, "models", None))
        module_name = self._module_name(name)
        if settings.in_process:
            return InProcessInstance(
                label=label, model_file=model_file, module_name=module_name, decoupled=decoupled,
                batching=batching, args=args, input_types=input_types, bridge=bridge,
            )
        interpreter = self._interpreters.for_model(settings.env_path, name, source.model_dir, settings.stub_timeout_s)
        spec = InstanceSpec(
            model_name=name, label=label, model_file=model_file, module_name=module_name, decoupled=decoupled,
            batching=batching, args=args, input_types=input_types, interpreter=interpreter,
            stub_timeout_s=settings.stub_timeout_s, execute_timeout_s=settings.execute_timeout_s,
            pipeline_depth=pipeline_depth(config, settings),
            polling=Polling(settings.server_poll_us / 1e6, settings.stub_poll_us / 1e6),
        )
        return IsolatedInstance(spec, bridge)
