"""The sink's settings: its options, and ``--metrics-config <setting>=<value>`` read as Triton reads them."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from tritium import ConfigError
from tritium_metrics_prometheus._families import DEFAULT_QUANTILES

_log = logging.getLogger("tritium.metrics")

KNOWN_SETTINGS = ("counter_latencies", "summary_latencies", "summary_quantiles", "histogram_latencies")


@attrs.define(frozen=True, slots=True)
class MetricsConfig:
    """Which per-model latency metrics exist (``--metrics-config``).

    As in Triton: latency counters are on unless ``counter_latencies=false``; summaries and the first-response
    histogram are off unless ``summary_latencies=true`` / ``histogram_latencies=true`` (values compared
    exactly, lowercase); ``summary_quantiles`` is ``<quantile>:<error>`` pairs separated by commas.
    """

    counter_latencies: bool = True
    summary_latencies: bool = False
    histogram_latencies: bool = False
    quantiles: tuple[tuple[float, float], ...] = DEFAULT_QUANTILES

    @classmethod
    def parse(cls, settings: Iterable[str] | Mapping[str, Any]) -> MetricsConfig:
        """Read ``--metrics-config`` values (``"k=v"`` strings, or a mapping from a config file)."""
        pairs: list[tuple[str, str]] = []
        if isinstance(settings, Mapping):
            pairs = [(str(k), _text(v)) for k, v in settings.items()]
        else:
            for item in settings:
                name, sep, value = str(item).partition("=")
                if not sep or "," in name:
                    raise ConfigError(f"--metrics-config option format is <setting>=<value>. Got {item}")
                pairs.append((name, value))
        config = cls()
        for name, value in pairs:
            if name == "counter_latencies" and value == "false":
                config = attrs.evolve(config, counter_latencies=False)
            elif name == "summary_latencies" and value == "true":
                config = attrs.evolve(config, summary_latencies=True)
            elif name == "histogram_latencies" and value == "true":
                config = attrs.evolve(config, histogram_latencies=True)
            elif name == "summary_quantiles":
                quantiles = parse_quantiles(value)
                if quantiles:
                    config = attrs.evolve(config, quantiles=quantiles)
            elif name not in KNOWN_SETTINGS:
                _log.warning("unknown --metrics-config setting '%s' ignored", name)
        return config


def parse_quantiles(text: str) -> tuple[tuple[float, float], ...]:
    """``"0.5:0.05,0.9:0.01"`` -> ((0.5, 0.05), (0.9, 0.01)); malformed pairs are logged and skipped."""
    pairs: list[tuple[float, float]] = []
    for part in text.split(","):
        quantile, sep, error = part.partition(":")
        if not sep:
            _log.error("Invalid option: [%s]. No ':' delimiter found. Expected format is <quantile>:<error>", part)
            continue
        try:
            q, e = float(quantile), float(error)
        except ValueError as exc:
            _log.error("Invalid option: [%s]. Error: %s", part, exc)
            continue
        if not (0.0 <= q <= 1.0) or e < 0:
            _log.error("Invalid option: [%s]. Quantile must be in [0, 1] and error positive", part)
            continue
        pairs.append((q, e))
    return tuple(pairs)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@attrs.define(frozen=True, slots=True)
class SinkSettings:
    """The sink's resolved options (see :data:`tritium_metrics_prometheus.plugin.OPTIONS`)."""

    port: int = 8002
    address: str = "0.0.0.0"
    interval_ms: int = 2000
    cpu_metrics: bool = True
    gpu_metrics: bool = True
    metrics: MetricsConfig = attrs.field(factory=MetricsConfig)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SinkSettings:
        interval = int(options.get("interval_ms", 2000))
        if interval <= 0:
            raise ConfigError(f"--metrics-interval-ms must be positive, got {interval}")
        return cls(
            port=int(options.get("port", 8002)),
            address=str(options.get("address", "0.0.0.0")),
            interval_ms=interval,
            cpu_metrics=bool(options.get("allow_cpu_metrics", True)),
            gpu_metrics=bool(options.get("allow_gpu_metrics", True)),
            metrics=MetricsConfig.parse(options.get("metrics_config") or ()),
        )
