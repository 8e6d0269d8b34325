"""What makes ``serve`` refuse a prepared model before any instance is created, in one place: model loading and
``tritium repo check`` both ask here, so a repository that checks clean loads (and the other way round)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tritium._base.errors import ConfigError, TritiumError
from tritium._base.specs import SchedulerSpec
from tritium._runtime.repository import PreparedModel, implements_auto_complete, model_source
from tritium.abc import Backend

if TYPE_CHECKING:
    from tritium._plugins.host import PluginHost
    from tritium.config import ModelConfig

ENSEMBLE_BACKEND = "ensemble"


def scheduling_section(config: ModelConfig) -> str:
    """The config's scheduling section (``dynamic_batching``, ``sequence_batching``, ``ensemble_scheduling``),
    ``""`` when it has none."""
    return config.WhichOneof("scheduling_choice") or ""


def scheduler_for(config: ModelConfig, backend_name: str, host: PluginHost) -> SchedulerSpec:
    """The installed scheduler that serves ``config``; UNSUPPORTED, saying why, when none can."""
    section = scheduling_section(config)
    spec = host.schedulers.get(section)
    if spec is None:
        raise TritiumError.unsupported(
            f"model '{config.name}' uses '{section}', but no installed scheduler plugin serves it "
            "(see `tritium plugins`)"
        )
    if config.model_transaction_policy.decoupled and not spec.decoupled:
        raise TritiumError.unsupported(
            f"model '{config.name}' is decoupled, but scheduler '{spec.name}' (serving '{section or 'no section'}') "
            "does not serve decoupled models"
        )
    if backend_name == ENSEMBLE_BACKEND and spec.needs_instances:
        raise TritiumError.unsupported(
            f"ensemble model '{config.name}' needs a scheduler that serves it without instances; scheduler "
            f"'{spec.name}' needs model instances"
        )
    return spec


def check_servable(
    prepared: PreparedModel, host: PluginHost, backend_for: Callable[[str], Backend]
) -> SchedulerSpec:
    """Everything that would make loading ``prepared`` fail before its backend creates an instance, raised as
    the load raises it (ConfigError / TritiumError naming the file and the reason): no version to serve, a
    version folder without the model file its backend loads, a backend that is not installed or unavailable
    (``backend_for`` raises), a scheduling section no installed scheduler serves, no configuration file when
    no backend completed one (auto-complete disabled, or a backend that does not implement it). Returns the
    scheduler."""
    config = prepared.config
    model_dir = prepared.directory.path
    if not prepared.versions:
        if not any(p.is_dir() and p.name.isdigit() and not p.name.startswith("0") for p in _entries(model_dir)):
            raise ConfigError(
                f"{model_dir}: model '{config.name}' has no version folder (a numeric folder such as "
                f"{model_dir / '1'} holding the model file)"
            )
        raise ConfigError(
            f"{model_dir}: at least one version must be available under the version policy of model "
            f"'{config.name}'"
        )
    spec = scheduler_for(config, prepared.backend_name, host)
    if not spec.needs_instances:
        return spec
    backend_for(prepared.backend_name)
    if prepared.config_origin == "none":
        _refuse_missing_config(prepared, backend_for(prepared.backend_name))
    backend_spec = host.backends[prepared.backend_name]
    for version in prepared.versions:
        source = model_source(prepared.directory, config, version, backend_spec, {})
        if not source.model_file.exists():
            what = "is empty" if not any(_entries(source.version_dir)) else f"has no '{source.model_file.name}'"
            raise ConfigError(
                f"{source.model_file}: not found: version folder {source.version_dir} of model '{config.name}' "
                f"{what} (backend '{prepared.backend_name}' loads its model from that file)"
            )
    return spec


def _refuse_missing_config(prepared: PreparedModel, backend: Backend) -> None:
    """Triton's rule: a model without a configuration file loads only when its backend completed one."""
    why = (
        "auto-complete is disabled (--disable-auto-complete-config)"
        if implements_auto_complete(backend)
        else f"backend '{prepared.backend_name}' does not auto-complete configurations"
    )
    raise TritiumError.not_found(
        f"unable to find the model configuration file '{prepared.directory.path / 'config.pbtxt'}' for model "
        f"'{prepared.config.name}': {why}, so the model's inputs and outputs must be written there"
    )


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []
