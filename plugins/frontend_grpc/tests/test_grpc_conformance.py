"""The kernel's conformance kits, run against the gRPC frontend: FrontendConformance (through NVIDIA's
tritonclient.grpc.aio) and PluginPackagingConformance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from tritium_frontend_grpc import plugin

from tritium import FrontendSpec
from tritium.testing import FrontendConformance, PluginPackagingConformance
from tritium.testing.multiprocess import MultiProcessFrontendConformance
from tritium.testing.triton_clients import TritonGrpcClient


class TestGrpcFrontendConformance(FrontendConformance):
    @pytest.fixture
    def frontend_spec(self) -> FrontendSpec:
        return plugin.tritium_register_frontends()[0]

    def frontend_options(self, port: int) -> Mapping[str, Any]:
        return {"port": port, "address": "127.0.0.1"}

    def make_client(self, frontend: Any, port: int) -> TritonGrpcClient:
        return TritonGrpcClient(f"127.0.0.1:{port}")


class TestGrpcFrontendWorkersConformance(MultiProcessFrontendConformance, TestGrpcFrontendConformance):
    """The same tests with the frontend as ``tritium serve --workers 2`` runs it: two instances sharing the
    port, each on a worker's remote service."""


class TestGrpcPluginPackaging(PluginPackagingConformance):
    distribution = "tritium-frontend-grpc"
    entry_point = "frontend_grpc"
