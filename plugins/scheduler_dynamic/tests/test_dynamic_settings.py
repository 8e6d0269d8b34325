"""Reading the dynamic_batching section, priority levels, queue-policy deadlines, the delay hook."""

from __future__ import annotations

from typing import Any

import pytest
from tritium_scheduler_dynamic import BatcherSettings, QueuePolicy
from tritium_scheduler_dynamic._settings import delay_count


def test_defaults_follow_triton_normalization(kit: Any) -> None:
    settings = BatcherSettings.from_config(kit.simple_config(max_batch_size=8), {})
    assert settings.max_batch_size == 8
    assert settings.preferred_batch_sizes == {8}  # no preferred size = prefer max_batch_size
    assert settings.max_queue_delay_ns == 0
    assert not settings.preserve_ordering
    assert settings.priority_levels == 0
    assert settings.level_of(0) == 0 and settings.level_of(7) == 0
    assert settings.enforced_inputs == {}  # fixed dims: nothing to compare
    assert not settings.checks_inputs
    assert settings.delay_count == 0


def test_every_field_is_read(kit: Any) -> None:
    config = kit.simple_config(
        dims="-1",
        batching="""
            preferred_batch_size: [ 2, 4 ]
            max_queue_delay_microseconds: 300
            preserve_ordering: true
            priority_levels: 3
            default_priority_level: 2
            default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 50
                                   allow_timeout_override: true max_queue_size: 7 }
            priority_queue_policy { key: 1 value { default_timeout_microseconds: 10 max_queue_size: 2 } }
        """,
    )
    settings = BatcherSettings.from_config(config, {})
    assert settings.preferred_batch_sizes == {2, 4}
    assert settings.max_preferred_batch_size == 4
    assert settings.max_queue_delay_ns == 300_000
    assert settings.preserve_ordering
    assert settings.default_policy == QueuePolicy(True, 50_000, True, 7)
    assert settings.policy_of(1) == QueuePolicy(False, 10_000, False, 2)
    assert settings.policy_of(2) is settings.default_policy
    assert settings.enforced_inputs == {"INPUT0": False, "INPUT1": False}
    # priority 0 and out-of-range priorities take the default level
    assert [settings.level_of(p) for p in (0, 1, 2, 3, 4, 99)] == [2, 1, 2, 3, 2, 2]


def test_ragged_optional_and_shape_tensor_inputs(kit: Any) -> None:
    config = kit.simple_config(dims="-1")
    config.input[0].allow_ragged_batch = True
    config.input[1].optional = True
    settings = BatcherSettings.from_config(config, {})
    assert settings.enforced_inputs == {"INPUT1": False}
    assert settings.has_optional_input
    config.input[0].is_shape_tensor = True
    assert BatcherSettings.from_config(config, {}).enforced_inputs == {"INPUT0": True, "INPUT1": False}


@pytest.mark.parametrize(
    ("policy", "request_timeout_us", "deadline"),
    [
        (QueuePolicy(), 0, 0),
        (QueuePolicy(default_timeout_ns=5_000), 0, 1_000 + 5_000),
        (QueuePolicy(default_timeout_ns=5_000), 1, 1_000 + 5_000),  # no override allowed
        (QueuePolicy(default_timeout_ns=5_000, allow_timeout_override=True), 2, 1_000 + 2_000),
        (QueuePolicy(default_timeout_ns=5_000, allow_timeout_override=True), 9, 1_000 + 5_000),  # only shorter
        (QueuePolicy(allow_timeout_override=True), 2, 0),  # default 0 = none, as in Triton: override ignored
    ],
)
def test_deadlines(policy: QueuePolicy, request_timeout_us: int, deadline: int) -> None:
    assert policy.deadline_ns(1_000, request_timeout_us) == deadline


def test_delay_hook_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITONSERVER_DELAY_SCHEDULER", raising=False)
    assert delay_count({}) == 0
    monkeypatch.setenv("TRITONSERVER_DELAY_SCHEDULER", "12")
    assert delay_count({}) == 12
    assert delay_count({"delay_scheduler": 3}) == 3  # the scheduler option wins
    for raw, expected in (("", 0), ("abc", 0), ("4x", 4), (" 5", 5), ("-2", 0)):
        monkeypatch.setenv("TRITONSERVER_DELAY_SCHEDULER", raw)
        assert delay_count({}) == expected, raw
