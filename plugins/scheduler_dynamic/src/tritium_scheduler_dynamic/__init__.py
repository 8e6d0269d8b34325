"""Triton's dynamic batcher as a Tritium scheduler plugin (entry point ``scheduler_dynamic``).

Models whose config has a ``dynamic_batching`` section get a :class:`DynamicBatcher`: requests are queued
per priority level and executed in batches formed as Triton forms them (preferred sizes, queue delay,
queue policies, ordering). See docs/batching.md for every knob and the TRITONSERVER_DELAY_SCHEDULER hook.
"""

from tritium_scheduler_dynamic._batcher import DynamicBatcher
from tritium_scheduler_dynamic._queue import BatchQueue, Entry, Formed
from tritium_scheduler_dynamic._settings import (
    DELAY_SCHEDULER_ENV,
    DELAY_SCHEDULER_OPTION,
    BatcherSettings,
    QueuePolicy,
)
from tritium_scheduler_dynamic._shapes import batch_key

__all__ = [
    "DELAY_SCHEDULER_ENV",
    "DELAY_SCHEDULER_OPTION",
    "BatchQueue",
    "BatcherSettings",
    "DynamicBatcher",
    "Entry",
    "Formed",
    "QueuePolicy",
    "batch_key",
]
