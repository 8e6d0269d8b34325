"""Whether ``tritium serve`` will listen anywhere, decided before any model loads.

The kernel alone serves no protocol: HTTP/REST and gRPC come from frontend plugins. A server without any would
report ready while no client can reach it, so ``tritium serve`` refuses to start when no frontend plugin is
installed, naming the packages to install. A user who turned every installed frontend off (``--allow-http=false
--allow-grpc=false``, or ``--disable-plugin frontend_http ...``) asked for that; as tritonserver with every
protocol disabled, the server runs, with a warning in the log. (``tritium.Server`` used as a library has no such
check: embedding it without frontends is how it is called in-process.)
"""

from __future__ import annotations

import attrs

from tritium._base.install import install_command
from tritium._base.options import ServerOptions
from tritium._plugins.host import PluginHost

#: The frontends this project ships: (distribution, what it serves).
SHIPPED_FRONTENDS = (
    ("tritium-frontend-http", "HTTP/REST, KServe v2, port 8000"),
    ("tritium-frontend-grpc", "gRPC, KServe v2, port 8001"),
)

#: Entry-point names of frontend plugins start with this (the project's naming rule, docs/plugins.md).
FRONTEND_PLUGIN_PREFIX = "frontend_"


@attrs.define(frozen=True, slots=True)
class ListeningCheck:
    """``refusal``: why serve must not start (empty when it may); ``warning``: what to log when it starts."""

    refusal: str = ""
    warning: str = ""


def check_listening(host: PluginHost, options: ServerOptions) -> ListeningCheck:
    """Refuse when no frontend plugin is installed (unless the user blocked them with ``--disable-plugin``);
    warn when frontends are installed but none is enabled."""
    if not host.frontends:
        blocked = sorted(
            info.name for info in host.plugins() if info.blocked and info.name.startswith(FRONTEND_PLUGIN_PREFIX)
        )
        if blocked:
            return ListeningCheck(
                warning=f"no frontend is enabled (--disable-plugin {', '.join(blocked)}): the server listens on "
                "no port, no client can reach it"
            )
        hints = "; ".join(f"{install_command(dist)} ({what})" for dist, what in SHIPPED_FRONTENDS)
        return ListeningCheck(
            refusal="no frontend plugin is installed, so the server would listen on no port (the kernel serves no "
            f"protocol itself). Install one: {hints}. `tritium plugins` lists what is installed"
        )
    enabled = [
        name for name in host.frontends if options.components.get(f"frontend.{name}", {}).get("enabled", False)
    ]
    if enabled:
        return ListeningCheck()
    flags = sorted(f"{spec.enable_flag}=false" for spec in host.frontends.values() if spec.enable_flag)
    return ListeningCheck(
        warning=f"no frontend is enabled ({' '.join(flags) or 'disabled in the config file'}): the server listens "
        "on no port, no client can reach it"
    )
