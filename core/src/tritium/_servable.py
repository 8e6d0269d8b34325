"""What makes ``serve`` refuse a prepared model before any instance is created, in one place: model loading and
``tritium repo check`` both ask here, so a repository that checks clean loads (and the other way round)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tritium._errors import TritiumError
from tritium._specs import SchedulerSpec

if TYPE_CHECKING:
    from tritium._plugins import PluginHost
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
