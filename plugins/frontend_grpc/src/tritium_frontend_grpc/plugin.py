"""The ``frontend_grpc`` plugin: declares the ``grpc`` frontend (switched by ``--allow-grpc``).

Importing this module is cheap: grpc, the generated protobuf code and the servicer are imported only when
the server creates the frontend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tritium import FrontendSpec, hookimpl
from tritium_frontend_grpc._options import OPTIONS

if TYPE_CHECKING:
    from tritium import Frontend, InferenceService


def _create(service: InferenceService, options: Mapping[str, Any]) -> Frontend:
    from tritium_frontend_grpc._frontend import create_frontend

    return create_frontend(service, options)


@hookimpl
def tritium_register_frontends() -> list[FrontendSpec]:
    return [
        FrontendSpec(
            name="grpc",
            factory=_create,
            options=OPTIONS,
            enable_flag="--allow-grpc",
            reuse_port_option="reuse_port",
            address_option="address",
            port_option="port",
        )
    ]
