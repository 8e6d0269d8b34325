"""Model repositories on disk: finding models and versions, and turning a model directory into a ready-to-load
(parsed, backend-resolved, auto-completed, normalized) configuration.

Layout (Triton's): ``<repo>/<model>/config.pbtxt`` (optional when the backend can auto-complete),
``<repo>/<model>/configs/<name>.pbtxt`` (selected by ``--model-config-name``), ``<repo>/<model>/<N>/``
numeric version folders holding the model file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from tritium._base.errors import ConfigError, TritiumError
from tritium._base.options import ServerOptions
from tritium._base.specs import BackendSpec
from tritium.abc import Backend, ModelClient, ModelSource

if TYPE_CHECKING:
    from tritium._plugins.host import PluginHost
    from tritium.config import ModelConfig

ENSEMBLE_PLATFORM = "ensemble"

_log = logging.getLogger("tritium.repository")


@attrs.define(frozen=True, slots=True)
class ModelDirectory:
    """One model folder of one repository."""

    name: str
    path: Path
    repository: Path


@attrs.define(frozen=True, slots=True)
class RepositoryScan:
    """What a scan found: models by name, and names found in several repositories (unavailable)."""

    models: Mapping[str, ModelDirectory]
    duplicates: Mapping[str, tuple[Path, ...]]


@attrs.define(frozen=True, slots=True)
class PreparedModel:
    """A model ready to load: normalized config, chosen versions, resolved backend, output labels."""

    directory: ModelDirectory
    config: ModelConfig
    backend_name: str
    versions: tuple[int, ...]
    labels: Mapping[str, tuple[str, ...]]
    config_path: Path | None
    #: Where the configuration came from: ``"file"`` (config.pbtxt or configs/<name>.pbtxt), ``"override"``
    #: (the load API's ``config`` parameter), ``"backend"`` (no file: completed by a backend that implements
    #: auto-complete) or ``"none"`` (no file and nothing completed it: Triton refuses such a model).
    config_origin: str = "file"


def scan_repositories(paths: Sequence[str | os.PathLike[str]]) -> RepositoryScan:
    """Every model folder of every repository (hidden folders skipped); a repository that does not exist
    raises ConfigError naming it."""
    found: dict[str, list[ModelDirectory]] = {}
    for raw in paths:
        repo = Path(raw)
        if not repo.is_dir():
            raise ConfigError(f"failed to stat file {repo}: model repository path does not exist")
        for entry in sorted(repo.iterdir()):
            if entry.is_dir() and not entry.name.startswith("."):
                found.setdefault(entry.name, []).append(ModelDirectory(entry.name, entry, repo))
    models = {name: dirs[0] for name, dirs in found.items() if len(dirs) == 1}
    duplicates = {name: tuple(d.repository for d in dirs) for name, dirs in found.items() if len(dirs) > 1}
    return RepositoryScan(models, duplicates)


def version_numbers(model_dir: Path) -> list[int]:
    """Numeric version folders, ascending. Names that are not decimal numbers, or that start with "0",
    are ignored, as Triton does."""
    versions: list[int] = []
    if not model_dir.is_dir():
        return versions
    for entry in model_dir.iterdir():
        name = entry.name
        if entry.is_dir() and name.isdigit() and not name.startswith("0"):
            versions.append(int(name))
    return sorted(versions)


def config_path_for(model_dir: Path, config_name: str) -> Path | None:
    """``configs/<name>.pbtxt`` when selected and present, else ``config.pbtxt`` when present."""
    if config_name:
        custom = model_dir / "configs" / f"{config_name}.pbtxt"
        if custom.is_file():
            return custom
    default = model_dir / "config.pbtxt"
    return default if default.is_file() else None


def fingerprint(model_dir: Path, config_name: str = "") -> str:
    """A digest of everything in a model folder that matters for (re)loading: file names, sizes and
    modification times. Poll mode reloads a model whose fingerprint changed."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(model_dir):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            try:
                st = path.stat()
            except OSError:
                continue
            digest.update(f"{path.relative_to(model_dir)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    digest.update(config_name.encode())
    return digest.hexdigest()


def choose_versions(config: ModelConfig, available: Sequence[int], source: str) -> tuple[int, ...]:
    """The versions the version policy serves among ``available`` (latest N by default)."""
    policy = config.version_policy
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return tuple(available)
    if which == "specific":
        wanted = sorted(int(v) for v in policy.specific.versions)
        missing = [v for v in wanted if v not in available]
        if missing:
            raise ConfigError(
                f"{source}: version_policy.specific: version(s) {missing} of model '{config.name}' "
                "not found in the model repository"
            )
        return tuple(wanted)
    count = int(policy.latest.num_versions) if which == "latest" else 1
    return tuple(sorted(available)[-max(count, 1) :]) if available else ()


def read_labels(model_dir: Path, config: ModelConfig) -> dict[str, tuple[str, ...]]:
    """Classification labels of every output with a ``label_filename``, one label per line."""
    labels: dict[str, tuple[str, ...]] = {}
    for output in config.output:
        if output.label_filename:
            path = model_dir / output.label_filename
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"{path}: cannot read label_filename of output '{output.name}': {exc.strerror}"
                ) from None
            labels[output.name] = tuple(line.rstrip("\r") for line in text.split("\n") if line != "")
    return labels


def _resolve_backend(
    config: ModelConfig, model_dir: Path, versions: Sequence[int], host: PluginHost, source: str
) -> BackendSpec | None:
    """The installed backend that serves a model: the one its config names; else the one Triton's own rules
    infer from the files (:func:`tritium.config.autofill_backend_fields`, which also reads a
    ``<model>.<backend>`` folder name); else a plugin that recognizes a model file in a version folder (a
    third-party backend's files are unknown to Triton's rules)."""
    if config.platform == ENSEMBLE_PLATFORM:
        return None
    if config.backend:
        spec = host.backends.get(config.backend)
        if spec is None:
            raise ConfigError(
                f"{source}: backend '{config.backend}' is not available: no installed plugin provides it "
                "(see `tritium plugins`)"
            )
        return spec
    if config.platform:
        spec = host.backend_for_platform(config.platform)
        if spec is None:
            raise ConfigError(
                f"{source}: platform '{config.platform}' is not served by any installed backend plugin "
                "(see `tritium plugins`)"
            )
        return spec
    spec = _backend_by_triton_rules(config, model_dir, host)
    if spec is not None:
        return spec
    for version in sorted(versions, reverse=True):
        vdir = model_dir / str(version)
        names = [config.default_model_filename] if config.default_model_filename else []
        names += sorted(p.name for p in vdir.iterdir()) if vdir.is_dir() else []
        for name in names:
            if name and (vdir / name).exists():
                spec = host.backend_for_file(name)
                if spec is not None:
                    return spec
    raise ConfigError(
        f"{source}: unable to determine the backend of model '{model_dir.name}': the config names no "
        "'backend' or 'platform' and no version folder holds a model file an installed backend recognizes"
    )


def _backend_by_triton_rules(config: ModelConfig, model_dir: Path, host: PluginHost) -> BackendSpec | None:
    """The installed backend Triton's inference names (it looks into the first subfolder, in name order),
    None when the rules name none or name one no plugin provides."""
    from tritium.config import ModelConfigError, autofill_backend_fields

    subfolders = sorted(p for p in model_dir.iterdir() if p.is_dir()) if model_dir.is_dir() else []
    try:
        filled = autofill_backend_fields(
            config, model_name=model_dir.name, version_dir=subfolders[0] if subfolders else None
        )
    except ModelConfigError:
        return None
    spec = host.backends.get(filled.backend) if filled.backend else None
    if spec is None and filled.platform:
        spec = host.backend_for_platform(filled.platform)
    return spec


def _apply_triton_platform(config: ModelConfig, model_dir: Path, spec: BackendSpec) -> None:
    """Fill ``platform`` (and ``default_model_filename`` when Triton's rules name one) of a config that
    names no platform: what Triton's rules infer from the model's files when that is one of the backend's
    platforms (a folder holding ``model.graphdef`` is ``tensorflow_graphdef``), else the backend's first."""
    from tritium.config import ModelConfigError, autofill_backend_fields

    subfolders = sorted(p for p in model_dir.iterdir() if p.is_dir()) if model_dir.is_dir() else []
    try:
        filled = autofill_backend_fields(
            config, model_name=model_dir.name, version_dir=subfolders[0] if subfolders else None
        )
    except ModelConfigError:
        filled = None
    if filled is not None and filled.platform in spec.platforms:
        config.platform = filled.platform
        if filled.default_model_filename and not config.default_model_filename:
            config.default_model_filename = filled.default_model_filename
    else:
        config.platform = spec.platforms[0]


def _has_auto_kind(config: ModelConfig) -> bool:
    """Whether an instance group leaves its kind to the server (none given, or KIND_AUTO)."""
    if config.HasField("ensemble_scheduling"):
        return False
    return not config.instance_group or any(group.kind == 0 for group in config.instance_group)


def model_source(
    directory: ModelDirectory, config: ModelConfig, version: int, spec: BackendSpec | None,
    backend_options: Mapping[str, str], models: ModelClient | None = None,
) -> ModelSource:
    """Where version ``version`` of a model lives, for its backend (``models``: its client to other models,
    None for auto-complete probes)."""
    filename = config.default_model_filename or (spec.default_model_filename if spec else "")
    vdir = directory.path / str(version)
    return ModelSource(
        name=directory.name,
        version=version,
        model_dir=directory.path,
        version_dir=vdir,
        model_file=vdir / filename if filename else vdir,
        backend_options=dict(backend_options),
        models=models,
    )


def backend_options_for(options: ServerOptions, backend: str) -> dict[str, str]:
    """``--backend-config`` settings of one backend: global ones overridden by backend-specific ones."""
    merged = dict(options.backend_config.get("", {}))
    merged.update(options.backend_config.get(backend, {}))
    return merged


def prepare_model(
    directory: ModelDirectory,
    host: PluginHost,
    options: ServerOptions,
    *,
    backend_for: Callable[[str], Backend] | None = None,
    config_override: ModelConfig | None = None,
    gpu_count: int = 0,
) -> PreparedModel:
    """Parse, resolve, auto-complete and normalize a model's configuration (no model is loaded).

    ``backend_for(name)`` returns the backend object used for auto-complete (and raises when unavailable);
    ``config_override`` replaces the configuration file (the load API's ``config`` parameter).
    """
    from tritium import config as cfg

    model_dir = directory.path
    config_path = None if config_override is not None else config_path_for(model_dir, options.model_config_name)
    source = str(config_path or model_dir)
    if config_override is not None:
        config = cfg.ModelConfig()
        config.CopyFrom(config_override)
    elif config_path is not None:
        config = cfg.load_model_config(config_path)
    else:
        config = cfg.ModelConfig()
    if not config.name:
        config.name = directory.name  # a differing name is rejected by normalization, in Triton's words
    available = version_numbers(model_dir)
    spec = _resolve_backend(config, model_dir, available, host, source)
    if spec is not None:
        if not config.platform and spec.platforms:
            _apply_triton_platform(config, model_dir, spec)
        if not config.backend:
            config.backend = spec.name
    backend_name = spec.name if spec else ENSEMBLE_PLATFORM
    origin = "override" if config_override is not None else "file" if config_path is not None else "none"
    if spec is not None and options.auto_complete_config and backend_for is not None:
        if origin == "none" and implements_auto_complete(backend_for(spec.name)):
            origin = "backend"
        newest = available[-1] if available else 1
        source_for_ac = model_source(directory, config, newest, spec, backend_options_for(options, spec.name))
        try:
            config = backend_for(spec.name).auto_complete_config(source_for_ac, config)
        except (ConfigError, TritiumError):
            raise
        except Exception as exc:
            raise ConfigError(f"{source}: auto-complete by backend '{spec.name}' failed: {exc}") from exc
    auto_gpu = (
        gpu_count > 0 and spec is not None and backend_for is not None and backend_for(spec.name).supports_gpu()
    )
    if gpu_count > 0 and not auto_gpu and _has_auto_kind(config):
        _log.info(
            "model '%s': instance groups without a kind run on the CPU: backend '%s' cannot use a GPU here",
            directory.name, backend_name,
        )
    config = cfg.normalize_model_config(
        config, model_name=directory.name, source=source, gpu_count=gpu_count,
        allow_soft_placement=options.allow_soft_placement, auto_gpu=auto_gpu,
    )
    versions = choose_versions(config, available, source)
    return PreparedModel(
        directory=directory,
        config=config,
        backend_name=backend_name,
        versions=versions,
        labels=read_labels(model_dir, config),
        config_path=config_path,
        config_origin=origin,
    )


def implements_auto_complete(backend: Backend) -> bool:
    """Whether ``backend`` overrides :meth:`tritium.abc.Backend.auto_complete_config` (the default completes
    nothing). Triton serves a model without a configuration file only when its backend completed one."""
    return type(backend).auto_complete_config is not Backend.auto_complete_config
