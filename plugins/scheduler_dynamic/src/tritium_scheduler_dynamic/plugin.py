"""Entry point ``scheduler_dynamic``: registers the dynamic batcher for models with ``dynamic_batching``."""

from __future__ import annotations

from collections.abc import Sequence

from tritium import Scheduler, SchedulerContext, SchedulerSpec, hookimpl


def create_scheduler(ctx: SchedulerContext) -> Scheduler:
    """Factory named by the spec: one batcher per loaded model version."""
    from tritium_scheduler_dynamic._batcher import DynamicBatcher

    return DynamicBatcher(ctx)


@hookimpl
def tritium_register_schedulers() -> Sequence[SchedulerSpec]:
    return [
        SchedulerSpec(name="dynamic", config_section="dynamic_batching", factory=create_scheduler, decoupled=True)
    ]
