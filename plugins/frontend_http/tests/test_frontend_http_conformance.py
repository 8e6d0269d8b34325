"""The kernel's conformance kits, run against the HTTP frontend: FrontendConformance (through NVIDIA's
tritonclient.http.aio, as the gRPC frontend runs it through tritonclient.grpc.aio) and PluginPackagingConformance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import tritium_frontend_http as plugin

from tritium import FrontendSpec
from tritium.testing import FrontendConformance, PluginPackagingConformance
from tritium.testing.multiprocess import MultiProcessFrontendConformance
from tritium.testing.triton_clients import TritonHttpClient


class TestHttpFrontendConformance(FrontendConformance):
    @pytest.fixture
    def frontend_spec(self) -> FrontendSpec:
        return plugin.tritium_register_frontends()[0]

    def frontend_options(self, port: int) -> Mapping[str, Any]:
        return {"port": port, "address": "127.0.0.1"}

    def make_client(self, frontend: Any, port: int) -> TritonHttpClient:
        return TritonHttpClient(f"127.0.0.1:{port}")


class TestHttpFrontendWorkersConformance(MultiProcessFrontendConformance, TestHttpFrontendConformance):
    """The same tests with the frontend as ``tritium serve --workers 2`` runs it: two instances sharing the
    port, each on a worker's remote service."""


class TestHttpPluginPackaging(PluginPackagingConformance):
    distribution = "tritium-frontend-http"
    entry_point = "frontend_http"
    allowed_imports = ("aiohttp",)
