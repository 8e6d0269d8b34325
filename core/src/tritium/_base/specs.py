"""Declarations returned by the registration hooks: small frozen records naming a component and its factory."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from tritium._runtime.service import InferenceService
    from tritium.abc import Backend, Frontend, MetricsSink, Scheduler, SchedulerContext


@attrs.define(frozen=True, slots=True)
class OptionSpec:
    """A typed option of a component.

    ``name`` is the key in the server config file (``[frontend.http] port = 8000``); ``flag`` is the
    command-line flag that sets it (``--http-port``), None when it has none. ``type`` is one of bool, int,
    float, str, or list (repeatable flag, list of strings). ``choices`` restricts string values.
    """

    name: str
    type: type
    default: Any
    help: str
    flag: str | None = None
    choices: Sequence[str] | None = None


@attrs.define(frozen=True, slots=True)
class BackendSpec:
    """A backend. ``name`` is what ``backend:`` names in a config; ``platforms`` are the ``platform:``
    strings it serves; ``default_model_filename`` is the file (or directory) looked for in a version folder,
    which also lets the kernel infer the backend of a config that names none. ``factory(options)`` gets
    the backend's ``--backend-config`` settings as strings.

    ``availability``, when given, is a cheap check run without creating the backend (``tritium plugins``,
    startup logs): it returns None when the backend can be used, else why not (e.g. ``"install
    onnxruntime: pip install tritium-backend-onnx[cpu]"``). Check with ``importlib.util.find_spec``, never
    by importing the framework."""

    name: str
    factory: Callable[[Mapping[str, str]], Backend]
    default_model_filename: str
    platforms: Sequence[str] = ()
    extra_model_filenames: Sequence[str] = ()
    availability: Callable[[], str | None] | None = None


@attrs.define(frozen=True, slots=True)
class SchedulerSpec:
    """A scheduler serving models whose config has the section ``config_section`` (the name of the
    ``scheduling_choice`` oneof field, e.g. ``"dynamic_batching"``), or ``""`` for models with none.

    ``decoupled``: the scheduler serves decoupled models (it overrides :meth:`tritium.Scheduler.infer_stream`);
    a decoupled model under a scheduler without it does not load. ``needs_instances``: False for a scheduler
    that answers requests without instances of its own model (an ensemble forwards them to other models through
    :attr:`tritium.SchedulerContext.models`); the model then needs no backend and gets an executor with no
    instances."""

    name: str
    config_section: str
    factory: Callable[[SchedulerContext], Scheduler]
    decoupled: bool = False
    needs_instances: bool = True


@attrs.define(frozen=True, slots=True)
class FrontendSpec:
    """A frontend. ``enable_flag`` (e.g. ``--allow-http``) switches it on or off; ``options`` are its
    typed options, which appear in ``tritium serve --help``.

    ``reuse_port_option`` names the frontend's boolean option that makes it bind its listening socket with
    ``SO_REUSEPORT``. Under ``tritium serve --workers N`` (N > 1) the kernel sets that option and runs the
    frontend in every worker process, all sharing the port; a frontend that names none runs in the first
    worker only (it still works, on one core). ``address_option`` and ``port_option`` name its options that
    hold the listening address and port: with them the supervisor binds the port once for the whole server
    before any worker starts, so that a port taken by anything else is refused as a single process refuses it
    (instead of joining another server's ``SO_REUSEPORT`` group) and port 0 means one port for every worker."""

    name: str
    factory: Callable[[InferenceService, Mapping[str, Any]], Frontend]
    options: Sequence[OptionSpec] = ()
    enable_flag: str | None = None
    enabled_by_default: bool = True
    reuse_port_option: str | None = None
    address_option: str | None = None
    port_option: str | None = None


@attrs.define(frozen=True, slots=True)
class MetricsSinkSpec:
    """A metrics sink, with the same option and enable-flag conventions as :class:`FrontendSpec`."""

    name: str
    factory: Callable[[InferenceService, Mapping[str, Any]], MetricsSink]
    options: Sequence[OptionSpec] = ()
    enable_flag: str | None = None
    enabled_by_default: bool = True
