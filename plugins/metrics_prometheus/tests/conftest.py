"""Helpers for the Prometheus sink's tests: a scraper that parses the text, a fake service, a fake /proc."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from prometheus_client.parser import text_string_to_metric_families

try:  # the kernel's config module; tritonclient ships the same message (same field names and numbers)
    from tritium.config import ModelConfig
except ImportError:  # pragma: no cover - until tritium.config lands
    from tritonclient.grpc.model_config_pb2 import ModelConfig  # type: ignore[no-redef]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics text: (name, sorted labels) -> value (parsed by prometheus_client)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if family.type == "counter" and name == f"{family.name}_total":
                name = family.name  # the Python parser adds _total; Triton's counters have none
            out[(name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


class FakeService:
    """Answers ``model_config`` for the models it was given (others: not found)."""

    def __init__(self, configs: dict[tuple[str, str], str]) -> None:
        self._configs = {key: text_format.Parse(text, ModelConfig()) for key, text in configs.items()}
        self.ready = True

    def model_config(self, name: str, version: str = "") -> Any:
        if not self.ready or (name, version) not in self._configs:
            raise LookupError(f"model '{name}' version {version} is not ready")
        return self._configs[(name, version)]


def fake_proc(directory: Path, *, busy: int, idle: int, total_kb: int = 1000, available_kb: int = 250) -> Path:
    """Write /proc/stat and /proc/meminfo lookalikes; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "stat").write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    (directory / "meminfo").write_text(
        f"MemTotal:       {total_kb} kB\nMemFree:        10 kB\nMemAvailable:   {available_kb} kB\n"
    )
    return directory


@pytest.fixture(scope="session")
def prom() -> Any:
    """These helpers as one object (test modules cannot import conftest under --import-mode=importlib)."""
    return types.SimpleNamespace(samples=samples, value=value, FakeService=FakeService, fake_proc=fake_proc)
