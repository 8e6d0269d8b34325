"""The device interface: the CUDA implementation against the real ``cuda-python`` binding (without a GPU
only its error path runs), and the test double kept to the same interface."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from tritium_backend_tensorrt._cuda import CudaRuntime, DeviceApi, _import_cudart

from tritium import StatusCode, TritiumError, visible_gpu_count

_METHODS = sorted(
    name for name, _ in inspect.getmembers(DeviceApi, inspect.isfunction) if not name.startswith("_")
)
_CUDART_CALLS = [
    "cudaSetDevice", "cudaGetDeviceProperties", "cudaStreamCreate", "cudaStreamDestroy", "cudaMalloc",
    "cudaFree", "cudaMemcpyAsync", "cudaStreamSynchronize", "cudaStreamBeginCapture", "cudaStreamEndCapture",
    "cudaGraphInstantiate", "cudaGraphLaunch", "cudaGraphExecDestroy", "cudaGraphDestroy", "cudaGetErrorString",
]


def test_both_implementations_have_the_whole_interface(fake):
    assert len(_METHODS) == 13
    for implementation in (CudaRuntime, fake.FakeDevice):
        missing = [m for m in _METHODS if not callable(getattr(implementation, m, None))]
        assert not missing, f"{implementation.__name__} lacks {missing}"
        for name in _METHODS:
            expected = list(inspect.signature(getattr(DeviceApi, name)).parameters)
            actual = list(inspect.signature(getattr(implementation, name)).parameters)
            assert actual == expected, f"{implementation.__name__}.{name}{actual} != {expected}"


def _cudart():
    try:
        return _import_cudart()
    except ImportError:
        pytest.skip("cuda-python is not installed")


def test_every_runtime_call_and_enum_used_exists_in_cuda_python():
    rt = _cudart()
    assert [c for c in _CUDART_CALLS if not hasattr(rt, c)] == []
    assert rt.cudaMemcpyKind.cudaMemcpyHostToDevice and rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
    assert rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal is not None
    assert int(rt.cudaError_t.cudaSuccess) == 0


def test_without_a_gpu_every_call_is_an_internal_error_naming_cuda_s_reason():
    _cudart()
    if visible_gpu_count() > 0:
        pytest.skip("a GPU is visible: the error path is not reachable this way")
    runtime = CudaRuntime()
    calls = [
        ("cudaSetDevice", lambda: runtime.set_device(0)),
        ("cudaStreamCreate", runtime.create_stream),
        ("cudaMalloc", lambda: runtime.malloc(64)),
        ("cudaGetDeviceProperties", lambda: runtime.compute_capability(0)),
    ]
    for name, call in calls:
        with pytest.raises(TritiumError) as info:
            call()
        assert info.value.code is StatusCode.INTERNAL
        assert str(info.value).startswith(f"CUDA {name} failed: "), str(info.value)
        assert len(str(info.value)) > len(f"CUDA {name} failed: ")


@pytest.mark.gpu
def test_round_trip_through_device_memory_on_a_gpu():
    _cudart()
    if visible_gpu_count() == 0:
        pytest.skip("needs a CUDA GPU")
    runtime = CudaRuntime()
    runtime.set_device(0)
    stream = runtime.create_stream()
    pointer = runtime.malloc(4 * 1024)
    try:
        data = np.arange(1024, dtype=np.float32)
        back = np.empty_like(data)
        runtime.copy_to_device(pointer, data, stream)
        runtime.copy_to_host(back, pointer, stream)
        runtime.synchronize(stream)
        np.testing.assert_array_equal(back, data)
        assert runtime.compute_capability(0).count(".") == 1
    finally:
        runtime.free(pointer)
        runtime.destroy_stream(stream)
