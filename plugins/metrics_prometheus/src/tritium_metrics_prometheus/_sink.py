"""The Prometheus metrics sink: records kernel events and serves Triton's ``/metrics`` over HTTP.

``handle`` is on the request path, so it only does float arithmetic on the event's model series (one dict
lookup, no locks: events and scrapes both run on the server's event loop). Everything costly happens at
scrape time (building the families, rendering text) or on the polling timer (/proc, NVML).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from tritium import (
    BatchExecuted,
    Event,
    InferenceService,
    MetricsSink,
    ModelLoaded,
    ModelUnloaded,
    QueueSizeChanged,
    RequestCompleted,
)
from tritium_metrics_prometheus._collector import SinkState, TritonCollector
from tritium_metrics_prometheus._config import SinkSettings
from tritium_metrics_prometheus._exposition import render
from tritium_metrics_prometheus._families import FIRST_RESPONSE_HISTOGRAM
from tritium_metrics_prometheus._series import ModelSeries
from tritium_metrics_prometheus._system import CpuReader, GpuReader

_log = logging.getLogger("tritium.metrics")
_METRICS_PATH = re.compile(r"/metrics/?")
CONTENT_TYPE = "text/plain; charset=utf-8"


class PrometheusSink(MetricsSink):
    """Triton's metrics: per-model counters, gauges, optional summaries/histograms, CPU and GPU gauges.

    ``registry`` is this sink's own :class:`prometheus_client.CollectorRegistry`; collectors added to it
    (e.g. ``prometheus_client.ProcessCollector(registry=sink.registry)``) are served too.
    """

    def __init__(
        self,
        service: InferenceService | None,
        options: Mapping[str, Any] | SinkSettings,
        *,
        cpu_reader: Callable[[], CpuReader] | None = None,
        gpu_reader: Callable[[], GpuReader] | None = None,
    ) -> None:
        self.settings = options if isinstance(options, SinkSettings) else SinkSettings.from_options(options)
        self._service = service
        self.state = SinkState()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(TritonCollector(self.state, self.settings, self._resolve))
        self._cpu_factory = cpu_reader or CpuReader
        self._gpu_factory = gpu_reader or GpuReader
        self._cpu: CpuReader | None = None
        self._gpu: GpuReader | None = None
        self._poller: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None
        self._unloaded_versions: set[tuple[str, str]] = set()
        self._handlers: dict[type, Callable[[Any], None]] = {
            RequestCompleted: self._completed,
            BatchExecuted: self._executed,
            QueueSizeChanged: self._queue_size,
            ModelLoaded: self._loaded,
            ModelUnloaded: self._unloaded,
        }

    # ------------------------------------------------------------------------------------ events
    def handle(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _series(self, model: str, version: str) -> ModelSeries | None:
        """The series of a model version; created on its first event, except after it unloaded (a late
        event must not bring an unloaded version's series back)."""
        key = (model, version)
        series = self.state.models.get(key)
        if series is None:
            if key in self._unloaded_versions:
                return None
            series = self.state.models[key] = ModelSeries(model, version, self.settings.metrics)
        return series

    def _completed(self, event: RequestCompleted) -> None:
        series = self._series(event.model, event.version)
        if series is not None:
            series.completed(event)

    def _executed(self, event: BatchExecuted) -> None:
        series = self._series(event.model, event.version)
        if series is not None:
            series.exec_count += 1.0

    def _queue_size(self, event: QueueSizeChanged) -> None:
        series = self._series(event.model, event.version)
        if series is not None:
            series.pending = float(event.pending)

    def _loaded(self, event: ModelLoaded) -> None:
        self._unloaded_versions.discard((event.model, event.version))
        series = self._series(event.model, event.version)
        assert series is not None
        series.load_seconds = float(event.load_seconds)
        self._resolve(series)

    def _unloaded(self, event: ModelUnloaded) -> None:
        key = (event.model, event.version)
        self.state.models.pop(key, None)
        self._unloaded_versions.add(key)

    def _resolve(self, series: ModelSeries) -> None:
        """Read the model's ``metric_tags`` and histogram buckets from its config, once it is served."""
        if series.resolved or self._service is None:
            return
        try:
            config = self._service.model_config(series.model, series.version)
        except Exception:  # not ready yet: try again at the next scrape
            return
        series.resolved = True
        series.tags = {str(k): str(v) for k, v in config.metric_tags.items()}
        for control in config.model_metrics.metric_control:
            if control.metric_identifier.family == FIRST_RESPONSE_HISTOGRAM.name:
                series.set_buckets(list(control.histogram_options.buckets))

    # ----------------------------------------------------------------------------------- scraping
    def render(self) -> str:
        """The ``/metrics`` text, as Triton formats it."""
        return render(self.registry.collect())

    def poll(self) -> None:
        """Refresh CPU and GPU gauges now (the timer calls this every ``--metrics-interval-ms``)."""
        if self._cpu is not None:
            self.state.cpu = self._cpu.read()
        if self._gpu is not None and self._gpu.available:
            self.state.gpus = self._gpu.read()

    async def _poll_forever(self) -> None:
        interval = self.settings.interval_ms / 1000.0
        while True:
            await asyncio.sleep(interval)
            try:
                if self._gpu is not None and self._gpu.available:
                    await asyncio.to_thread(self.poll)  # NVML calls may block
                else:
                    self.poll()
            except Exception:
                _log.exception("polling CPU/GPU metrics failed")

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        if request.method != "GET":
            return web.json_response({"error": "Method Not Allowed"}, status=405)
        body = self.render() if _METRICS_PATH.fullmatch(request.path) else ""
        return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE})

    # --------------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        settings = self.settings
        if settings.cpu_metrics:
            self._cpu = self._cpu_factory()
            _log.info("Collecting CPU metrics")
        if settings.gpu_metrics:
            self._gpu = await asyncio.to_thread(self._gpu_factory)
        self.poll()
        if self._cpu is not None or (self._gpu is not None and self._gpu.available):
            self._poller = asyncio.get_running_loop().create_task(self._poll_forever(), name="metrics-poller")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._serve)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, settings.address, settings.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else settings.port
        _log.info("Started Metrics Service at %s:%d", settings.address, self.bound_port)

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._gpu is not None:
            self._gpu.close()
            self._gpu = None
