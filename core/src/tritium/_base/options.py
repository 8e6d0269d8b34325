"""The server's own options (the kernel's share of tritonserver's flags)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

CONTROL_MODES = ("none", "poll", "explicit")


@attrs.define(frozen=True, slots=True, kw_only=True)
class ServerOptions:
    """Everything that configures one :class:`tritium.Server`, whatever its source (flags, file, code).

    ``backend_config`` maps a backend name (or ``""`` for every backend) to its ``--backend-config``
    settings. ``components`` maps ``"<kind>.<name>"`` (e.g. ``"frontend.http"``) to that component's
    resolved options, including ``"enabled"``. ``extra_plugins`` are ``module[:object]`` references loaded
    besides the installed entry points (``--plugin``).
    """

    model_repositories: tuple[str, ...] = ()
    model_control_mode: str = "none"
    load_models: tuple[str, ...] = ()
    repository_poll_secs: float = 15.0
    model_config_name: str = ""
    auto_complete_config: bool = True
    allow_soft_placement: bool = True
    exit_on_error: bool = True
    exit_timeout_secs: float = 30.0
    strict_readiness: bool = True
    server_id: str = "triton"
    allow_client_shm: bool = False
    model_load_thread_count: int = 4
    inline_execution_us: int = 200
    workers: int = 1
    worker_poll_us: int = 500
    log_verbose: int = 0
    log_info: bool = True
    log_warning: bool = True
    log_error: bool = True
    log_format: str = "default"
    log_file: str = ""
    backend_config: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    disabled_plugins: tuple[str, ...] = ()
    extra_plugins: tuple[str, ...] = ()
    components: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
