"""The little of CUDA the backend needs, behind one small interface.

``DeviceApi`` is what instances call: current device, streams, device memory, asynchronous copies, and CUDA
graph capture. ``CudaRuntime`` implements it with NVIDIA's ``cuda-python`` runtime bindings
(``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6); the tests' double implements it with host
memory. Handles (streams, pointers, graphs) are plain ints, as TensorRT's Python API takes them.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import numpy as np

from tritium import TritiumError


class DeviceApi(Protocol):
    """Device memory and streams for TensorRT instances. Copies are asynchronous on ``stream``: the host
    array must stay alive and unchanged until ``synchronize(stream)`` returns."""

    def set_device(self, device_id: int) -> None: ...
    def compute_capability(self, device_id: int) -> str: ...
    def create_stream(self) -> int: ...
    def destroy_stream(self, stream: int) -> None: ...
    def malloc(self, nbytes: int) -> int: ...
    def free(self, pointer: int) -> None: ...
    def copy_to_device(self, pointer: int, array: np.ndarray, stream: int) -> None: ...
    def copy_to_host(self, array: np.ndarray, pointer: int, stream: int) -> None: ...
    def synchronize(self, stream: int) -> None: ...
    def begin_capture(self, stream: int) -> None: ...
    def end_capture(self, stream: int) -> int: ...
    def launch_graph(self, graph: int, stream: int) -> None: ...
    def destroy_graph(self, graph: int) -> None: ...


def _import_cudart() -> Any:
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime  # cuda-python < 12.6
    return runtime


class CudaRuntime:
    """:class:`DeviceApi` over ``cuda-python``'s runtime API. Every CUDA error becomes an INTERNAL
    :class:`tritium.TritiumError` naming the call and CUDA's message."""

    def __init__(self) -> None:
        self._rt = _import_cudart()
        self._lock = threading.Lock()
        self._streams: dict[int, Any] = {}
        self._graphs: dict[int, tuple[Any, Any]] = {}

    def _check(self, result: Any, call: str) -> Any:
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != int(self._rt.cudaError_t.cudaSuccess):
            _, text = self._rt.cudaGetErrorString(err)
            message = text.decode() if isinstance(text, bytes) else str(text)
            raise TritiumError.internal(f"CUDA {call} failed: {message}")
        return values[0] if len(values) == 1 else tuple(values)

    def set_device(self, device_id: int) -> None:
        self._check(self._rt.cudaSetDevice(device_id), "cudaSetDevice")

    def compute_capability(self, device_id: int) -> str:
        props = self._check(self._rt.cudaGetDeviceProperties(device_id), "cudaGetDeviceProperties")
        return f"{props.major}.{props.minor}"

    def create_stream(self) -> int:
        stream = self._check(self._rt.cudaStreamCreate(), "cudaStreamCreate")
        handle = int(stream)
        with self._lock:
            self._streams[handle] = stream
        return handle

    def destroy_stream(self, stream: int) -> None:
        with self._lock:
            obj = self._streams.pop(stream, None)
        if obj is not None:
            self._check(self._rt.cudaStreamDestroy(obj), "cudaStreamDestroy")

    def _stream(self, stream: int) -> Any:
        with self._lock:
            return self._streams[stream]

    def malloc(self, nbytes: int) -> int:
        return int(self._check(self._rt.cudaMalloc(max(int(nbytes), 1)), "cudaMalloc"))

    def free(self, pointer: int) -> None:
        self._check(self._rt.cudaFree(pointer), "cudaFree")

    def copy_to_device(self, pointer: int, array: np.ndarray, stream: int) -> None:
        if array.nbytes:
            kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
            result = self._rt.cudaMemcpyAsync(pointer, array.ctypes.data, array.nbytes, kind, self._stream(stream))
            self._check(result, "cudaMemcpyAsync (host to device)")

    def copy_to_host(self, array: np.ndarray, pointer: int, stream: int) -> None:
        if array.nbytes:
            kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
            result = self._rt.cudaMemcpyAsync(array.ctypes.data, pointer, array.nbytes, kind, self._stream(stream))
            self._check(result, "cudaMemcpyAsync (device to host)")

    def synchronize(self, stream: int) -> None:
        self._check(self._rt.cudaStreamSynchronize(self._stream(stream)), "cudaStreamSynchronize")

    def begin_capture(self, stream: int) -> None:
        mode = self._rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._check(self._rt.cudaStreamBeginCapture(self._stream(stream), mode), "cudaStreamBeginCapture")

    def end_capture(self, stream: int) -> int:
        graph = self._check(self._rt.cudaStreamEndCapture(self._stream(stream)), "cudaStreamEndCapture")
        executable = self._check(self._rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        handle = int(executable)
        with self._lock:
            self._graphs[handle] = (graph, executable)
        return handle

    def launch_graph(self, graph: int, stream: int) -> None:
        with self._lock:
            _, executable = self._graphs[graph]
        self._check(self._rt.cudaGraphLaunch(executable, self._stream(stream)), "cudaGraphLaunch")

    def destroy_graph(self, graph: int) -> None:
        with self._lock:
            pair = self._graphs.pop(graph, None)
        if pair is not None:
            self._check(self._rt.cudaGraphExecDestroy(pair[1]), "cudaGraphExecDestroy")
            self._check(self._rt.cudaGraphDestroy(pair[0]), "cudaGraphDestroy")
