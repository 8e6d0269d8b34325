"""InferenceService is an abstract interface: required parts are abstract, optional parts are capabilities the
service reports, and an optional method of a service without that capability answers UNSUPPORTED."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tritium import (
    InferenceRequest,
    InferenceResponse,
    InferenceService,
    ServiceCapability,
    StatusCode,
    TritiumError,
)
from tritium.testing.service import ReferenceService


class Minimal(InferenceService):
    """Only what every service must do."""

    def server_live(self) -> bool:
        return True

    def server_ready(self) -> bool:
        return True

    def model_ready(self, name: str, version: str = "") -> bool:
        return False

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "minimal", "version": "0", "extensions": []}

    def model_metadata(self, name: str, version: str = "") -> dict[str, Any]:
        raise TritiumError.not_found(name)

    def model_config(self, name: str, version: str = "") -> Any:
        raise TritiumError.not_found(name)

    def is_decoupled(self, name: str, version: str = "") -> bool:
        raise TritiumError.not_found(name)

    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        raise TritiumError.not_found(request.model_name)

    async def infer_stream(self, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:
        yield await self.infer(request)


def test_the_required_parts_are_abstract() -> None:
    assert InferenceService.__abstractmethods__ == {
        "server_live", "server_ready", "model_ready", "server_metadata", "model_metadata", "model_config",
        "is_decoupled", "infer", "infer_stream",
    }


async def test_optional_parts_answer_unsupported_without_their_capability() -> None:
    service = Minimal()
    assert service.capabilities == frozenset() and not service.stopping
    assert not any(service.supports(c) for c in ServiceCapability)
    calls = [
        lambda: service.statistics(),
        lambda: service.repository_index(),
        lambda: service.log_settings(),
        lambda: service.update_log_settings({}),
        lambda: service.trace_settings(),
        lambda: service.update_trace_settings({}),
        lambda: service.shared_memory,
    ]
    for call in calls:
        with pytest.raises(TritiumError) as info:
            call()
        assert info.value.code is StatusCode.UNSUPPORTED and "is not supported by this server" in info.value.message
    for coroutine in (service.load_model("m"), service.unload_model("m")):
        with pytest.raises(TritiumError) as info:
            await coroutine
        assert info.value.code is StatusCode.UNSUPPORTED


async def test_the_data_plane_and_the_reference_fake_have_every_capability(repo: Path, make_server: Any) -> None:
    server = await make_server(repo)
    assert server.service.capabilities == frozenset(ServiceCapability)
    reference = ReferenceService()
    assert all(reference.supports(c) for c in ServiceCapability)
    assert reference.statistics()["model_stats"] and reference.shared_memory is not None
    stream = [r async for r in reference.infer_stream(InferenceRequest(model_name="repeat", inputs={}))]
    assert [r.final for r in stream] == [False, True]
