"""The dynamic batcher's settings, read once from a model's ``dynamic_batching`` section.

Reading the protobuf message on every request would be slow; the batcher works from these frozen values
instead. Field semantics follow Triton's ``ModelDynamicBatching`` / ``ModelQueuePolicy`` exactly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import attrs

DELAY_SCHEDULER_ENV = "TRITONSERVER_DELAY_SCHEDULER"
"""Triton's test hook: hold the batcher until this many requests are queued, then batch normally."""

DELAY_SCHEDULER_OPTION = "delay_scheduler"
"""The same hook as a :attr:`tritium.SchedulerContext.options` key (wins over the environment)."""

_LEADING_INT = re.compile(r"\s*[+-]?\d+")
_TIMEOUT_ACTION_DELAY = 1  # inference.ModelQueuePolicy.TimeoutAction.DELAY (REJECT is 0)


@attrs.define(frozen=True, slots=True)
class QueuePolicy:
    """One priority level's queue policy (Triton's ``ModelQueuePolicy``).

    ``default_timeout_ns`` 0 means no timeout; ``max_queue_size`` 0 means unbounded. ``delay_on_timeout``
    is the DELAY timeout action: expired requests are kept, behind the unexpired ones of their level,
    instead of being rejected.
    """

    delay_on_timeout: bool = False
    default_timeout_ns: int = 0
    allow_timeout_override: bool = False
    max_queue_size: int = 0

    @classmethod
    def from_message(cls, message: Any) -> QueuePolicy:
        return cls(
            delay_on_timeout=int(message.timeout_action) == _TIMEOUT_ACTION_DELAY,
            default_timeout_ns=int(message.default_timeout_microseconds) * 1000,
            allow_timeout_override=bool(message.allow_timeout_override),
            max_queue_size=int(message.max_queue_size),
        )

    def deadline_ns(self, enqueue_ns: int, request_timeout_us: int) -> int:
        """When a request enqueued at ``enqueue_ns`` expires (0 = never).

        As in Triton, a request's own timeout only counts when the policy allows overrides and it is
        *shorter* than the policy's default (so it is ignored when the default is 0, "no timeout").
        """
        timeout_ns = self.default_timeout_ns
        if self.allow_timeout_override and request_timeout_us > 0:
            timeout_ns = min(timeout_ns, request_timeout_us * 1000)
        return enqueue_ns + timeout_ns if timeout_ns > 0 else 0


@attrs.define(frozen=True, slots=True)
class BatcherSettings:
    """Everything the dynamic batcher needs from the model configuration.

    ``enforced_inputs`` maps each input whose shape must be equal across a batch (variable dims and no
    ``allow_ragged_batch``, or a shape tensor) to whether its *contents* must be equal too (shape
    tensors). ``delay_count`` is the TRITONSERVER_DELAY_SCHEDULER test hook (0 = off).
    """

    max_batch_size: int
    preferred_batch_sizes: frozenset[int]
    max_queue_delay_ns: int = 0
    preserve_ordering: bool = False
    priority_levels: int = 0
    default_priority_level: int = 0
    default_policy: QueuePolicy = attrs.field(factory=QueuePolicy)
    level_policies: Mapping[int, QueuePolicy] = attrs.field(factory=dict)
    enforced_inputs: Mapping[str, bool] = attrs.field(factory=dict)
    has_optional_input: bool = False
    delay_count: int = 0

    @property
    def max_preferred_batch_size(self) -> int:
        return max(self.preferred_batch_sizes)

    @property
    def checks_inputs(self) -> bool:
        """Whether requests must be compared before sharing a batch."""
        return bool(self.enforced_inputs) or self.has_optional_input

    def level_of(self, priority: int) -> int:
        """The queue level of a request priority: 0 or out of range means the default level."""
        if self.priority_levels == 0:
            return 0
        if priority <= 0 or priority > self.priority_levels:
            return self.default_priority_level
        return priority

    def policy_of(self, level: int) -> QueuePolicy:
        return self.level_policies.get(level, self.default_policy)

    @classmethod
    def from_config(cls, config: Any, options: Mapping[str, Any] | None = None) -> BatcherSettings:
        """Read a (normalized) ``ModelConfig``. Unset preferred sizes mean ``[max_batch_size]``, as
        Triton's normalization makes them."""
        batching = config.dynamic_batching
        max_batch_size = max(1, int(config.max_batch_size))
        preferred = frozenset(int(size) for size in batching.preferred_batch_size) or frozenset(
            {max_batch_size}
        )
        enforced: dict[str, bool] = {}
        has_optional = False
        for model_input in config.input:
            has_optional = has_optional or bool(model_input.optional)
            if model_input.is_shape_tensor:
                enforced[model_input.name] = True
            elif not model_input.allow_ragged_batch and any(int(d) < 0 for d in model_input.dims):
                enforced[model_input.name] = False
        return cls(
            max_batch_size=max_batch_size,
            preferred_batch_sizes=preferred,
            max_queue_delay_ns=int(batching.max_queue_delay_microseconds) * 1000,
            preserve_ordering=bool(batching.preserve_ordering),
            priority_levels=int(batching.priority_levels),
            default_priority_level=int(batching.default_priority_level),
            default_policy=QueuePolicy.from_message(batching.default_queue_policy),
            level_policies={
                int(level): QueuePolicy.from_message(policy)
                for level, policy in batching.priority_queue_policy.items()
            },
            enforced_inputs=enforced,
            has_optional_input=has_optional,
            delay_count=delay_count(options or {}),
        )


def delay_count(options: Mapping[str, Any]) -> int:
    """The TRITONSERVER_DELAY_SCHEDULER hook's value: the scheduler option, else the environment
    variable, else 0 (off). Read once, when the scheduler is created."""
    raw = options.get(DELAY_SCHEDULER_OPTION)
    if raw is None:
        raw = os.environ.get(DELAY_SCHEDULER_ENV)
    if raw is None:
        return 0
    match = _LEADING_INT.match(str(raw))  # read like C's atoi(), as Triton does: "" or "x" is 0 (off)
    return max(0, int(match.group())) if match else 0
