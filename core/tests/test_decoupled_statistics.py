"""A decoupled request whose stream ended normally counts as a success, also when the consumer closes the
iterator right after the final response (as the data plane and frontends do)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tritium import DataType, InferenceRequest, Server, ServerOptions, Tensor
from tritium.testing import fakes


@pytest.mark.asyncio
@pytest.mark.parametrize("close_after_final", [False, True])
async def test_stream_success_is_counted_as_success(tmp_path: Path, close_after_final: bool) -> None:
    fakes.write_identity_model(tmp_path, "d", DataType.INT32, (3,), 0, decoupled=True, decoupled_repeat=3)
    server = Server(ServerOptions(model_repositories=(str(tmp_path),)), plugins=[("fakes", fakes.fake_plugin)])
    await server.start()
    try:
        request = InferenceRequest(
            model_name="d", inputs={"INPUT0": Tensor("INPUT0", DataType.INT32, np.arange(3, dtype=np.int32))}
        )
        stream = server.service.infer_stream(request)
        got = []
        async for response in stream:
            got.append(response)
            if close_after_final and response.final:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.sleep(0.1)  # the scheduler's stream is finalized by the loop
        assert len([r for r in got if r.outputs]) == 3
        stats = server.service.statistics("d")["model_stats"][0]["inference_stats"]
        assert (stats["success"]["count"], stats["fail"]["count"]) == (1, 0)
    finally:
        await server.stop()
