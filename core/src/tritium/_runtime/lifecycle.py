"""Model lifecycle: loading, reloading and unloading model versions, and their states.

States are Triton's (READY, LOADING, UNLOADING, UNAVAILABLE with a reason). A reload builds the new runtime
while the old one keeps serving and swaps them only when the new one is READY, so no request fails because
of a reload; an unload waits for the requests in flight. Load and unload of one model are serialized; different
models load concurrently (bounded by ``--model-load-thread-count``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from tritium._base.completion import Completion
from tritium._base.devices import visible_gpu_count
from tritium._base.errors import ConfigError, TritiumError
from tritium._base.events import Event, ModelLoaded, ModelUnloaded
from tritium._base.options import ServerOptions
from tritium._base.stats import ModelStatistics
from tritium._base.tensors import InferenceRequest, InferenceResponse
from tritium._runtime.heap import RetiredCollection
from tritium._runtime.instances import InstancePool
from tritium._runtime.model_client import UnreachableModels
from tritium._runtime.repository import (
    ModelDirectory,
    PreparedModel,
    backend_options_for,
    fingerprint,
    model_source,
    prepare_model,
    scan_repositories,
)
from tritium._runtime.servable import check_servable, scheduler_for
from tritium._runtime.validation import RequestValidator
from tritium._runtime.warmup import run_warmup
from tritium.abc import Backend, InstancePlacement, ModelInstance, Scheduler, SchedulerContext
from tritium.protocol import parse_model_version

if TYPE_CHECKING:
    from tritium._plugins.host import PluginHost
    from tritium._runtime.model_client import ScopedModelClient
    from tritium.config import ModelConfig

_log = logging.getLogger("tritium.lifecycle")

READY = "READY"
LOADING = "LOADING"
UNLOADING = "UNLOADING"
UNAVAILABLE = "UNAVAILABLE"

_KIND_GPU = 1


@attrs.define(slots=True, eq=False)
class LoadedVersion:
    """A READY model version: what requests are routed to."""

    name: str
    version: int
    config: ModelConfig
    pool: InstancePool
    scheduler: Scheduler
    validator: RequestValidator
    decoupled: bool
    infer_now: Callable[[InferenceRequest], InferenceResponse | Completion[InferenceResponse] | None] | None = None
    in_flight: int = 0
    idle: asyncio.Event = attrs.field(factory=asyncio.Event)

    def __attrs_post_init__(self) -> None:
        self.idle.set()

    def enter(self) -> None:
        self.in_flight += 1
        self.idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle.set()


@attrs.define(slots=True)
class VersionState:
    state: str
    reason: str = ""


@attrs.define(slots=True, eq=False)
class ModelRecord:
    """Everything known about one model name."""

    name: str
    directory: ModelDirectory | None = None
    states: dict[int, VersionState] = attrs.field(factory=dict)
    serving: dict[int, LoadedVersion] = attrs.field(factory=dict)
    error: str = ""
    duplicate_in: tuple[Path, ...] = ()  # the repositories that all hold this name (then it cannot load)
    wanted: bool = False
    fingerprint: str = ""
    lock: asyncio.Lock = attrs.field(factory=asyncio.Lock)
    temp_dir: str | None = None

    def ready_versions(self) -> list[int]:
        return sorted(self.serving)

    def duplicate_message(self) -> str:
        """Why a name found in several repositories cannot load (empty when it is found in one)."""
        if not self.duplicate_in:
            return ""
        return f"model '{self.name}' appears in multiple repositories: " + ", ".join(map(str, self.duplicate_in))


class ModelManager:
    """Owns every model's runtime and state; the data plane asks it for the runtime serving a request."""

    def __init__(
        self,
        options: ServerOptions,
        host: PluginHost,
        emit: Callable[[Event], None],
        statistics: Callable[[str, int], ModelStatistics],
        scheduler_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.options = options
        self.host = host
        self._emit = emit
        self._statistics = statistics
        self._scheduler_options = dict(scheduler_options or {})
        self._records: dict[str, ModelRecord] = {}
        self._backends: dict[str, Backend] = {}
        self._load_slots = asyncio.Semaphore(max(options.model_load_thread_count, 1))
        self.gpu_count = visible_gpu_count()
        self._poll_task: asyncio.Task[None] | None = None
        self._retired = RetiredCollection()
        self.client_for: Callable[[str], ScopedModelClient] | None = None
        """Makes the model client of a model (its scheduler's and instances' way to other models); set by
        the data plane. None: models reach no other model."""

    # ------------------------------------------------------------------------------------ backends
    def backend(self, name: str) -> Backend:
        """The backend object for ``name``, created on first use; UNAVAILABLE with the reason when its
        framework is missing."""
        backend = self._backends.get(name)
        if backend is None:
            spec = self.host.backends.get(name)
            if spec is None:
                raise TritiumError.unavailable(f"backend '{name}' is not installed")
            reason = spec.availability() if spec.availability is not None else None
            if reason:  # the plugin's own cheap check, as `tritium plugins` and `repo check` read it
                raise TritiumError.unavailable(f"backend '{name}' is unavailable: {reason}")
            backend = spec.factory(backend_options_for(self.options, name))
            reason = backend.availability()
            if reason:
                raise TritiumError.unavailable(f"backend '{name}' is unavailable: {reason}")
            self._backends[name] = backend
        return backend

    # ------------------------------------------------------------------------------------- lookups
    def record(self, name: str) -> ModelRecord | None:
        return self._records.get(name)

    def records(self) -> list[ModelRecord]:
        return [self._records[n] for n in sorted(self._records)]

    def runtime(self, name: str, version: str | int = "") -> LoadedVersion:
        """The READY runtime serving ``name`` (``version`` "" or -1 = the newest ready), or Triton's error."""
        if version == -1:
            version = ""
        record = self._records.get(name)
        if record is None or (not record.serving and not record.states):
            raise TritiumError.not_found(f"Request for unknown model: '{name}' is not found")
        if not version:
            if not record.serving:
                raise TritiumError.not_found(f"Request for unknown model: '{name}' has no available versions")
            return record.serving[max(record.serving)]
        number = version if isinstance(version, int) else parse_model_version(version)
        loaded = record.serving.get(number)
        if loaded is not None:
            return loaded
        if number in record.states:
            raise TritiumError.unavailable(
                f"Request for unknown model: '{name}' version {number} is not at ready state"
            )
        raise TritiumError.not_found(f"Request for unknown model: '{name}' version {number} is not found")

    def all_ready(self) -> bool:
        """Strict readiness: every model that should be loaded has a READY version."""
        return all(r.serving for r in self._records.values() if r.wanted)

    # ---------------------------------------------------------------------------------- load/unload
    def scan(self) -> dict[str, ModelDirectory]:
        scan = scan_repositories(self.options.model_repositories)
        for name, record in self._records.items():
            if record.duplicate_in and name not in scan.duplicates:  # no longer ambiguous
                if record.error == record.duplicate_message():
                    record.error = ""
                record.duplicate_in = ()
        for name, repos in scan.duplicates.items():
            record = self._records.setdefault(name, ModelRecord(name))
            record.duplicate_in = tuple(repos)
            record.error = record.duplicate_message()
        return dict(scan.models)

    async def load_initial(self) -> list[str]:
        """Load what the control mode says to load at startup; returns the names that failed."""
        mode = self.options.model_control_mode
        found = self.scan()
        if mode == "explicit":
            wanted = self.options.load_models
            names = sorted(found) if "*" in wanted else list(dict.fromkeys(wanted))
        else:
            names = sorted(found)
        for name in found:
            self._records.setdefault(name, ModelRecord(name, found[name]))
        results = await asyncio.gather(
            *(self.load(name, directories=found) for name in names), return_exceptions=True
        )
        failed = []
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                _log.error("failed to load '%s': %s", name, result)
                failed.append(name)
        failed.extend(n for n in self._records if self._records[n].error and n not in failed and n in found)
        return failed

    async def load(
        self,
        name: str,
        *,
        config_override: ModelConfig | None = None,
        files: Mapping[str, bytes] | None = None,
        directories: Mapping[str, ModelDirectory] | None = None,
    ) -> None:
        """Load or reload ``name``; raises the load error (the model then reports it as UNAVAILABLE)."""
        record = self._records.setdefault(name, ModelRecord(name))
        async with record.lock:
            record.wanted = True
            if files:
                directory = self._materialize(record, files)
            else:
                found = directories if directories is not None else self.scan()
                located = found.get(name)
                if located is None:
                    if record.duplicate_in:
                        raise TritiumError.invalid_arg(record.duplicate_message())
                    if not record.serving and not record.states:
                        self._records.pop(name, None)
                    raise TritiumError.invalid_arg(
                        f"failed to load '{name}', failed to poll from model repository"
                    )
                directory = located
            record.directory = directory
            record.fingerprint = await asyncio.to_thread(fingerprint, directory.path, self.options.model_config_name)
            try:
                prepared = await asyncio.to_thread(self._prepare, directory, config_override)
            except (ConfigError, TritiumError) as exc:
                record.error = str(exc)
                if not record.serving:
                    record.states.clear()
                raise TritiumError.invalid_arg(str(exc)) from None
            record.error = ""
            await self._apply(record, prepared)

    def _prepare(self, directory: ModelDirectory, config_override: ModelConfig | None) -> PreparedModel:
        prepared = prepare_model(
            directory, self.host, self.options, backend_for=self.backend,
            config_override=config_override, gpu_count=self.gpu_count,
        )
        check_servable(prepared, self.host, self.backend)
        return prepared

    def _materialize(self, record: ModelRecord, files: Mapping[str, bytes]) -> ModelDirectory:
        """Write the load API's ``file:`` overrides into a private model folder (Triton does the same)."""
        base = tempfile.mkdtemp(prefix="tritium-override-")
        model_dir = Path(base, record.name)
        model_dir.mkdir()
        for rel, content in files.items():
            target = (model_dir / rel).resolve()
            if not str(target).startswith(str(model_dir.resolve()) + os.sep):
                shutil.rmtree(base, ignore_errors=True)
                raise TritiumError.invalid_arg(f"invalid file path '{rel}' in load request")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        if record.temp_dir:
            shutil.rmtree(record.temp_dir, ignore_errors=True)
        record.temp_dir = base
        return ModelDirectory(record.name, model_dir, Path(base))

    async def _apply(self, record: ModelRecord, prepared: PreparedModel) -> None:
        """Build the runtimes of the prepared versions, swap them in, retire versions no longer served."""
        new_versions = set(prepared.versions)
        for version in prepared.versions:
            if version not in record.serving:
                record.states[version] = VersionState(LOADING)
        results = await asyncio.gather(
            *(self._build(prepared, v) for v in prepared.versions), return_exceptions=True
        )
        errors = []
        for version, result in zip(prepared.versions, results, strict=True):
            if isinstance(result, BaseException):
                reason = str(result) if isinstance(result, (TritiumError, ConfigError)) else repr(result)
                _log.error("failed to load '%s' version %d: %s", record.name, version, reason)
                errors.append(f"version {version} is at UNAVAILABLE state: {reason};")
                if version not in record.serving:
                    record.states[version] = VersionState(UNAVAILABLE, reason)
                continue
            old = record.serving.get(version)
            record.serving[version] = result
            record.states[version] = VersionState(READY)
            if old is not None:
                asyncio.get_running_loop().create_task(self._retire(old))
            _log.info("successfully loaded '%s' version %d", record.name, version)
        for version in sorted(set(record.serving) - new_versions):
            await self._unload_version(record, version)
        for version in list(record.states):
            if version not in new_versions and version not in record.serving:
                state = record.states[version]
                if state.state != UNAVAILABLE:
                    record.states[version] = VersionState(UNAVAILABLE, "unloaded")
        if errors:
            raise TritiumError.invalid_arg(f"load failed for model '{record.name}': " + "\n".join(errors))

    async def _build(self, prepared: PreparedModel, version: int) -> LoadedVersion:
        config = prepared.config
        started = time.monotonic()
        spec = scheduler_for(config, prepared.backend_name, self.host)
        client = self.client_for(config.name) if self.client_for is not None else None
        instances: list[ModelInstance] = []
        warmups: list[tuple[int, int]] = []
        if spec.needs_instances:
            async with self._load_slots:
                instances, warmups = await asyncio.to_thread(self._create_instances, prepared, version, client)
        statistics = self._statistics(config.name, version)
        pool = InstancePool.from_config(
            config, instances, model_version=version, labels=prepared.labels,
            statistics=statistics, emit=self._emit,
            inline_threshold_ns=max(self.options.inline_execution_us, 0) * 1000,
        )
        for inferences, duration_ns in warmups:
            pool.recorder.warmed_up(inferences, duration_ns)
        if client is not None:
            client.on_blocking_call = pool.keep_executions_on_threads
        context = SchedulerContext(
            model_name=config.name, model_version=version, config=config, pool=pool,
            clock_ns=time.monotonic_ns, emit=self._emit, options=self._scheduler_options,
            models=client if client is not None else UnreachableModels(),
        )
        try:
            scheduler = spec.factory(context)
        except BaseException:
            await asyncio.to_thread(pool.close)
            raise
        loaded = LoadedVersion(
            name=config.name, version=version, config=config, pool=pool, scheduler=scheduler,
            validator=RequestValidator(config),
            decoupled=bool(config.model_transaction_policy.decoupled),
            # The data plane skips infer_now for schedulers that keep the default (always None).
            infer_now=scheduler.infer_now if type(scheduler).infer_now is not Scheduler.infer_now else None,
        )
        self._emit(ModelLoaded(config.name, str(version), time.monotonic() - started))
        return loaded

    def _create_instances(
        self, prepared: PreparedModel, version: int, client: ScopedModelClient | None = None
    ) -> tuple[list[ModelInstance], list[tuple[int, int]]]:
        """Create every instance of every instance group (on this worker thread), then warm each up; returns
        the instances and their warmup executions (see :func:`run_warmup`). ``client`` is the model's way to
        other models (:attr:`tritium.abc.ModelSource.models`)."""
        config = prepared.config
        backend = self.backend(prepared.backend_name)
        source = model_source(
            prepared.directory, config, version, self.host.backends[prepared.backend_name],
            backend_options_for(self.options, prepared.backend_name), models=client,
        )
        instances: list[ModelInstance] = []
        warmups: list[tuple[int, int]] = []
        try:
            for placement in self._placements(config):
                instance = backend.create_instance(source, config, placement)
                instances.append(instance)
                warmups.extend(run_warmup(config, instance, prepared.directory.path))
        except BaseException:
            for instance in instances:
                try:
                    instance.close()
                except Exception:
                    _log.exception("closing a partly loaded instance failed")
            raise
        if not instances:
            raise TritiumError.invalid_arg(f"model '{config.name}' has no instances (instance_group count 0)")
        return instances, warmups

    def _placements(self, config: ModelConfig) -> list[InstancePlacement]:
        placements: list[InstancePlacement] = []
        for group_index, group in enumerate(config.instance_group):
            group_name = group.name or f"{config.name}_{group_index}"
            count = int(group.count) if group.count else 1
            if group.kind == _KIND_GPU:
                gpus = [int(g) for g in group.gpus] or list(range(self.gpu_count))
                if self.gpu_count == 0 or not gpus:
                    if not self.options.allow_soft_placement:
                        raise TritiumError.invalid_arg(
                            f"instance group {group_name} of model {config.name} specifies KIND_GPU but "
                            "no GPUs are available (--allow-soft-placement=false)"
                        )
                    _log.warning(
                        "instance group %s of model %s specifies KIND_GPU but no GPU is available: "
                        "placing it on the CPU (soft placement)", group_name, config.name,
                    )
                    placements.extend(
                        InstancePlacement(f"{group_name}_{i}", "CPU", 0, group_name, i) for i in range(count)
                    )
                    continue
                missing = [g for g in gpus if g >= self.gpu_count]
                if missing:
                    raise TritiumError.invalid_arg(
                        f"instance group {group_name} of model {config.name} specifies invalid or "
                        f"unsupported gpu id {missing[0]}. GPUs with at least the minimum required CUDA "
                        f"compute compatibility are: {', '.join(str(i) for i in range(self.gpu_count))}"
                    )
                index = 0
                for gpu in gpus:
                    for _ in range(count):
                        placements.append(
                            InstancePlacement(f"{group_name}_{index}", "GPU", gpu, group_name, index)
                        )
                        index += 1
            else:
                # KIND_CPU, KIND_MODEL (the backend places it) and KIND_AUTO without GPUs run on the CPU.
                placements.extend(
                    InstancePlacement(f"{group_name}_{i}", "CPU", 0, group_name, i) for i in range(count)
                )
        return placements

    async def unload(self, name: str, *, explicit: bool = True) -> None:
        """Unload every version of ``name``, waiting for requests in flight."""
        record = self._records.get(name)
        if record is None:
            raise TritiumError.invalid_arg(
                f"failed to unload '{name}', model is not loaded"
            )
        async with record.lock:
            if explicit:
                record.wanted = False
            for version in sorted(record.serving):
                await self._unload_version(record, version)
            record.error = ""

    async def _unload_version(self, record: ModelRecord, version: int) -> None:
        loaded = record.serving.pop(version, None)
        if loaded is None:
            return
        record.states[version] = VersionState(UNLOADING)
        await self._retire(loaded)
        record.states[version] = VersionState(UNAVAILABLE, "unloaded")
        self._emit(ModelUnloaded(record.name, str(version)))
        _log.info("successfully unloaded '%s' version %d", record.name, version)

    async def _retire(self, loaded: LoadedVersion) -> None:
        """Let a replaced or unloaded runtime finish its requests, then close it."""
        await loaded.idle.wait()
        await loaded.scheduler.close()
        await asyncio.to_thread(loaded.pool.close)
        self._retired.schedule()

    def abort_pending(self, error: TritiumError) -> None:
        """Answer every request that has not started executing with ``error`` (shutdown past the exit
        timeout); executions in progress go on."""
        for record in self._records.values():
            for loaded in record.serving.values():
                try:
                    loaded.scheduler.abort_pending(error)
                except Exception:
                    _log.exception("aborting the queue of model '%s' failed", record.name)
                loaded.pool.refuse_waiting(error)

    async def unload_all(self, timeout: float | None = None) -> bool:
        """Unload every model (shutdown). With ``timeout``, models still executing when it passes are left
        as they are (their threads abandoned, the process is about to exit); False then."""
        self._retired.stop()
        loaded_versions = [(r.name, loaded) for r in self.records() for loaded in r.serving.values()]
        unloads = [
            asyncio.ensure_future(self.unload(r.name, explicit=False)) for r in self.records() if r.serving
        ]
        clean = True
        if unloads:
            done, pending = await asyncio.wait(unloads, timeout=timeout)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    _log.warning("unloading a model failed: %r", task.exception())
            if pending:
                clean = False
                for task in pending:
                    task.cancel()
                for name, loaded in loaded_versions:
                    if loaded.in_flight:
                        _log.warning(
                            "model '%s' version %d still executing at the exit timeout: not waiting for it",
                            name,
                            loaded.version,
                        )
                        loaded.pool.abandon()
        for record in self._records.values():
            if record.temp_dir:
                shutil.rmtree(record.temp_dir, ignore_errors=True)
        return clean

    # ------------------------------------------------------------------------------------- polling
    def start_polling(self) -> None:
        if self.options.model_control_mode == "poll" and self._poll_task is None:
            self._poll_task = asyncio.get_running_loop().create_task(self._poll_loop())

    async def stop_polling(self) -> None:
        if self._poll_task is not None:
            self._poll_task.cancel()
            try:
                await self._poll_task
            except asyncio.CancelledError:
                pass
            self._poll_task = None

    async def _poll_loop(self) -> None:
        interval = max(float(self.options.repository_poll_secs), 0.1)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.poll_once()
            except Exception:
                _log.exception("polling the model repository failed")

    async def poll_once(self) -> None:
        """Load new models, reload changed ones, unload removed ones (poll mode). A failed reload keeps
        the old version serving."""
        found = await asyncio.to_thread(self.scan)
        for name, record in list(self._records.items()):
            if name not in found and record.serving and record.temp_dir is None:
                await self.unload(name, explicit=False)
                record.wanted = False
        for name, directory in found.items():
            known = self._records.get(name)
            current = await asyncio.to_thread(fingerprint, directory.path, self.options.model_config_name)
            if known is not None and known.fingerprint == current and (known.serving or known.error):
                continue
            try:
                await self.load(name, directories=found)
            except TritiumError as exc:
                _log.error("failed to load '%s': %s", name, exc)

