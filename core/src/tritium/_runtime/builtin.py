"""Built-in components, registered through the same hooks as external plugins (entry point ``builtin``)."""

from __future__ import annotations

from tritium._base.specs import SchedulerSpec
from tritium._runtime.default_scheduler import DefaultScheduler
from tritium.hookspecs import hookimpl


@hookimpl
def tritium_register_schedulers() -> list[SchedulerSpec]:
    """The default scheduler, serving models whose config has no scheduling section."""
    return [SchedulerSpec(name="default", config_section="", factory=DefaultScheduler, decoupled=True)]
