""":class:`tritium.testing.FrontendClient` adapters over NVIDIA's ``tritonclient`` (HTTP and gRPC, asyncio).

For frontends speaking Triton's protocols: the conformance tests then run through the same client library
users have. ``tritonclient`` is imported when an adapter is created, never at import of this module::

    def make_client(self, frontend, port):
        return TritonGrpcClient(f"127.0.0.1:{port}")
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import numpy as np

from tritium._base.datatypes import DataType
from tritium._base.tensors import Tensor

__all__ = ["TritonGrpcClient", "TritonHttpClient"]

_STREAM_TIMEOUT_S = 30.0


def _as_datatype(decoded: Any, datatype: str) -> np.ndarray[Any, Any]:
    """A client-decoded output in the kit's representation (BF16 as ml_dtypes.bfloat16)."""
    array: np.ndarray[Any, Any] = np.asarray(decoded)
    if datatype == DataType.BF16.value and array.dtype != DataType.BF16.numpy_dtype:
        converted: np.ndarray[Any, Any] = array.astype(DataType.BF16.numpy_dtype)
        return converted
    return array


class _TritonClientAdapter:
    """What both tritonclient adapters share: health calls and closing (``client`` is set by subclasses)."""

    client: Any

    async def live(self) -> bool:
        return bool(await self.client.is_server_live())

    async def ready(self) -> bool:
        return bool(await self.client.is_server_ready())

    async def model_ready(self, model: str) -> bool:
        return bool(await self.client.is_model_ready(model))

    async def close(self) -> None:
        await self.client.close()


class TritonGrpcClient(_TritonClientAdapter):
    """Adapter over ``tritonclient.grpc.aio`` (streaming through ``ModelStreamInfer``)."""

    def __init__(self, url: str) -> None:
        import tritonclient.grpc.aio as grpcclient  # type: ignore[import-untyped]

        self._module = grpcclient
        self.client = grpcclient.InferenceServerClient(url)

    async def server_metadata(self) -> Mapping[str, Any]:
        return dict(await self.client.get_server_metadata(as_json=True))

    async def model_metadata(self, model: str) -> Mapping[str, Any]:
        return dict(await self.client.get_model_metadata(model, as_json=True))

    def _inputs(self, inputs: Sequence[Tensor]) -> list[Any]:
        out = []
        for tensor in inputs:
            item = self._module.InferInput(tensor.name, list(tensor.data.shape), tensor.datatype.value)
            item.set_data_from_numpy(tensor.data)
            out.append(item)
        return out

    @staticmethod
    def _outputs(result: Any) -> dict[str, np.ndarray[Any, Any]]:
        response = result.get_response()
        return {o.name: _as_datatype(result.as_numpy(o.name), o.datatype) for o in response.outputs}

    async def infer(
        self, model: str, inputs: Sequence[Tensor], outputs: Sequence[str] | None = None
    ) -> Mapping[str, np.ndarray[Any, Any]]:
        wanted = [self._module.InferRequestedOutput(n) for n in outputs] if outputs else None
        return self._outputs(await self.client.infer(model, self._inputs(inputs), outputs=wanted))

    async def stream_infer(self, model: str, inputs: Sequence[Tensor]) -> Sequence[Mapping[str, np.ndarray[Any, Any]]]:
        async def requests() -> AsyncIterator[dict[str, Any]]:
            yield {"model_name": model, "inputs": self._inputs(inputs)}

        responses = []
        async for result, error in self.client.stream_infer(requests(), stream_timeout=_STREAM_TIMEOUT_S):
            if error is not None:
                raise error
            responses.append(self._outputs(result))
        return responses



class TritonHttpClient(_TritonClientAdapter):
    """Adapter over ``tritonclient.http.aio`` (binary tensor data; no streaming)."""

    def __init__(self, url: str) -> None:
        import tritonclient.http.aio as httpclient  # type: ignore[import-untyped]

        self._module = httpclient
        self.client = httpclient.InferenceServerClient(url)

    async def server_metadata(self) -> Mapping[str, Any]:
        return dict(await self.client.get_server_metadata())

    async def model_metadata(self, model: str) -> Mapping[str, Any]:
        return dict(await self.client.get_model_metadata(model))

    async def infer(
        self, model: str, inputs: Sequence[Tensor], outputs: Sequence[str] | None = None
    ) -> Mapping[str, np.ndarray[Any, Any]]:
        items = []
        for tensor in inputs:
            item = self._module.InferInput(tensor.name, list(tensor.data.shape), tensor.datatype.value)
            item.set_data_from_numpy(tensor.data, binary_data=True)
            items.append(item)
        wanted = [self._module.InferRequestedOutput(n, binary_data=True) for n in outputs] if outputs else None
        result = await self.client.infer(model, items, outputs=wanted)
        return {
            o["name"]: _as_datatype(result.as_numpy(o["name"]), o["datatype"]) for o in result.get_response()["outputs"]
        }

    async def stream_infer(self, model: str, inputs: Sequence[Tensor]) -> Sequence[Mapping[str, np.ndarray[Any, Any]]]:
        raise NotImplementedError("tritonclient.http has no streaming inference")

