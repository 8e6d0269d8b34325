"""Tritium's hooks: how a plugin adds backends, schedulers, frontends and metrics sinks.

A plugin is a module (or object) exposed under the entry-point group ``tritium.plugins``; the entry point's
name is the plugin's name (by convention the folder name, e.g. ``backend_onnx``). It implements any of the
hooks below with :data:`tritium.hookimpl`::

    from tritium import BackendSpec, hookimpl

    @hookimpl
    def tritium_register_backends():
        return [BackendSpec(name="mybackend", factory=MyBackend, default_model_filename="model.my")]

Each hook is called exactly once, when the server is assembled, and returns declarations (frozen
records); pluggy is never on the request path. The kernel collects every plugin's declarations, rejects two
components of one kind with the same name, and picks components by name. A plugin module must be cheap to
import: import the framework (onnxruntime, torch, ...) only inside the factory or the component's methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from tritium._base.specs import BackendSpec, FrontendSpec, MetricsSinkSpec, SchedulerSpec

PROJECT_NAME = "tritium"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def tritium_add_hookspecs(pluginmanager: pluggy.PluginManager) -> None:
    """Add further hook specifications (for plugins that define their own extension points).

    Called once, before any ``tritium_register_*`` hook.
    """


@hookspec
def tritium_register_backends() -> Sequence[BackendSpec]:  # type: ignore[empty-body]
    """Return the backends this plugin provides.

    Called once at assembly. Each :class:`tritium.BackendSpec` names the backend (``backend:`` in a model
    config), the ``platform:`` strings it serves, its default model file name, and a factory taking the
    backend's ``--backend-config`` options. The factory runs when the first model of that backend loads.
    """


@hookspec
def tritium_register_schedulers() -> Sequence[SchedulerSpec]:  # type: ignore[empty-body]
    """Return the schedulers this plugin provides.

    Called once at assembly. Each :class:`tritium.SchedulerSpec` names the model-config section it serves
    (``"dynamic_batching"``, ``"sequence_batching"``, ``"ensemble_scheduling"``) and a factory taking a
    :class:`tritium.SchedulerContext`; it is called once per loaded model version.
    """


@hookspec
def tritium_register_frontends() -> Sequence[FrontendSpec]:  # type: ignore[empty-body]
    """Return the frontends (network protocols) this plugin provides.

    Called once at assembly. The factory gets the :class:`tritium.InferenceService` and the frontend's
    resolved options; the server starts every enabled frontend after the models are loaded.
    """


@hookspec
def tritium_register_metrics_sinks() -> Sequence[MetricsSinkSpec]:  # type: ignore[empty-body]
    """Return the metrics sinks this plugin provides.

    Called once at assembly. Every enabled sink receives every kernel event through
    :meth:`tritium.MetricsSink.handle`.
    """
