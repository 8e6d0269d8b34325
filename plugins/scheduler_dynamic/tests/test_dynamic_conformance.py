"""The kernel's conformance kit run against the dynamic batcher, and the plugin's packaging checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from tritium_scheduler_dynamic import plugin

from tritium import DataType, Scheduler, SchedulerContext
from tritium.testing import PluginPackagingConformance, SchedulerConformance
from tritium.testing.fakes import identity_config
from tritium.testing.multiprocess import MultiProcessSchedulerConformance


class TestDynamicBatcherConformance(SchedulerConformance):
    @pytest.fixture
    def scheduler_factory(self) -> Callable[[SchedulerContext], Scheduler]:
        (spec,) = plugin.tritium_register_schedulers()
        return spec.factory

    @pytest.fixture
    def scheduler_config(self) -> Any:
        return identity_config("conformance", DataType.INT32, (4,), max_batch_size=8, inputs=2, dynamic_batching=True)


class TestDynamicBatcherConformanceVariableShapes(TestDynamicBatcherConformance):
    """Variable dims: requests of different shapes must never share a batch."""

    @pytest.fixture
    def scheduler_config(self) -> Any:
        config = identity_config("conformance", DataType.FP32, (-1,), max_batch_size=8, dynamic_batching=True)
        config.dynamic_batching.max_queue_delay_microseconds = 2000
        config.dynamic_batching.preserve_ordering = True
        return config


class TestDynamicBatcherWorkersConformance(MultiProcessSchedulerConformance):
    """The batcher in an executor fed by two workers at once (``tritium serve --workers 2``)."""

    @pytest.fixture
    def scheduler_factory(self) -> Callable[[SchedulerContext], Scheduler]:
        (spec,) = plugin.tritium_register_schedulers()
        return spec.factory

    @pytest.fixture
    def scheduler_config(self) -> Any:
        config = identity_config("conformance", DataType.INT32, (4,), max_batch_size=8, dynamic_batching=True)
        config.dynamic_batching.max_queue_delay_microseconds = 2000
        return config


class TestPackaging(PluginPackagingConformance):
    distribution = "tritium-scheduler-dynamic"
    entry_point = "scheduler_dynamic"


def test_registers_the_dynamic_scheduler_for_dynamic_batching() -> None:
    (spec,) = plugin.tritium_register_schedulers()
    assert spec.name == "dynamic"
    assert spec.config_section == "dynamic_batching"
