"""A test double of the exact TensorRT 10 Python API surface the backend uses, and of its CUDA device API.

Never shipped (it lives in the tests). ``make_fake()`` returns ``(trt, device)``: a module-like namespace
with TensorRT's names (``Runtime``, ``ILogger``, ``DataType``, ``TensorIOMode``, ``TensorFormat``,
``ExecutionContextAllocationStrategy``, ``init_libnvinfer_plugins``) and a :class:`FakeDevice` holding
"device memory" in host byte arrays.

A fake plan file is ``MAGIC`` followed by JSON describing the engine::

    {"tensors": [{"name": "INPUT0", "mode": "INPUT", "dtype": "FLOAT", "shape": [-1, 4]}, ...],
     "profiles": [{"INPUT0": [[1, 4], [4, 4], [8, 4]]}, ...],
     "compute": {"OUTPUT0": ["add", "INPUT0", "INPUT1"], "OUTPUT1": ["identity", "INPUT0"]}}

The fake enforces what TensorRT enforces: ``set_input_shape`` refuses shapes outside the context's profile,
``execute_async_v3`` refuses unset shapes or addresses, a buffer too small for a tensor is an error, and CUDA
graph capture records the enqueued work instead of running it (a launch replays it).
"""

from __future__ import annotations

import enum
import json
import threading
import types
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np

MAGIC = b"FAKE-TRT-PLAN-1\n"


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8
    INT4 = 9


NUMPY = {
    "FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BOOL": np.bool_,
    "UINT8": np.uint8, "FP8": np.uint8, "BF16": ml_dtypes.bfloat16, "INT64": np.int64, "INT4": np.uint8,
}


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class TensorFormat(enum.Enum):
    LINEAR = 0
    CHW2 = 1
    HWC8 = 2
    CHW32 = 7


class ExecutionContextAllocationStrategy(enum.Enum):
    STATIC = 0
    ON_PROFILE_CHANGE = 1
    USER_MANAGED = 2


class Severity(enum.Enum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class ILogger:
    Severity = Severity

    def __init__(self) -> None:
        pass

    def log(self, severity: Severity, msg: str) -> None:  # pragma: no cover - overridden
        pass


def plan_bytes(spec: dict[str, Any]) -> bytes:
    """The content of a fake plan file for ``spec``."""
    return MAGIC + json.dumps(spec).encode()


# ---------------------------------------------------------------------------------------------- device
class FakeDevice:
    """:class:`DeviceApi` in host memory; counts what is live so tests can check nothing leaks."""

    def __init__(self, gpu_count: int = 2, capability: str = "9.0") -> None:
        self.gpu_count = gpu_count
        self.capability = capability
        self._lock = threading.Lock()
        self._next = 0x1000
        self.memory: dict[int, bytearray] = {}
        self.streams: dict[int, list[Callable[[], None]] | None] = {}
        self.graphs: dict[int, list[Callable[[], None]]] = {}
        self.current: dict[int, int] = {}
        self.launches = 0
        self.enqueues = 0

    def _handle(self) -> int:
        with self._lock:
            self._next += 0x100
            return self._next

    def set_device(self, device_id: int) -> None:
        if not 0 <= device_id < self.gpu_count:
            raise RuntimeError(f"fake cudaSetDevice: invalid device ordinal {device_id}")
        self.current[threading.get_ident()] = device_id

    def compute_capability(self, device_id: int) -> str:
        return self.capability

    def create_stream(self) -> int:
        handle = self._handle()
        self.streams[handle] = None
        return handle

    def destroy_stream(self, stream: int) -> None:
        del self.streams[stream]

    def malloc(self, nbytes: int) -> int:
        handle = self._handle()
        self.memory[handle] = bytearray(max(int(nbytes), 1))
        return handle

    def free(self, pointer: int) -> None:
        del self.memory[pointer]

    def _check_stream(self, stream: int) -> None:
        assert stream in self.streams, f"unknown stream {stream}"

    def copy_to_device(self, pointer: int, array: np.ndarray, stream: int) -> None:
        self._check_stream(stream)
        data = np.ascontiguousarray(array).tobytes()
        buffer = self.memory[pointer]
        assert len(data) <= len(buffer), f"copy of {len(data)} bytes into a {len(buffer)}-byte buffer"
        buffer[: len(data)] = data

    def copy_to_host(self, array: np.ndarray, pointer: int, stream: int) -> None:
        self._check_stream(stream)
        buffer = self.memory[pointer]
        assert array.nbytes <= len(buffer), f"copy of {array.nbytes} bytes out of a {len(buffer)}-byte buffer"
        array.reshape(-1).view(np.uint8)[:] = np.frombuffer(bytes(buffer[: array.nbytes]), dtype=np.uint8)

    def synchronize(self, stream: int) -> None:
        self._check_stream(stream)
        assert self.streams[stream] is None, "synchronize during a capture"

    def enqueue(self, stream: int, work: Callable[[], None]) -> None:
        """What the fake context calls: run now, or record while the stream captures."""
        self._check_stream(stream)
        self.enqueues += 1
        recording = self.streams[stream]
        if recording is None:
            work()
        else:
            recording.append(work)

    def begin_capture(self, stream: int) -> None:
        assert self.streams[stream] is None, "nested capture"
        self.streams[stream] = []

    def end_capture(self, stream: int) -> int:
        recorded = self.streams[stream]
        assert recorded is not None, "end_capture without begin_capture"
        self.streams[stream] = None
        handle = self._handle()
        self.graphs[handle] = recorded
        return handle

    def launch_graph(self, graph: int, stream: int) -> None:
        self._check_stream(stream)
        self.launches += 1
        for work in self.graphs[graph]:
            work()

    def destroy_graph(self, graph: int) -> None:
        del self.graphs[graph]

    def live(self) -> tuple[int, int, int]:
        """(allocations, streams, graphs) still alive."""
        return len(self.memory), len(self.streams), len(self.graphs)


# ---------------------------------------------------------------------------------------------- engine
def _compute(op: str, args: list[np.ndarray], dtype: Any) -> np.ndarray:
    if op == "identity":
        return args[0].astype(dtype)
    if op == "add":
        return (args[0] + args[1]).astype(dtype)
    if op == "sub":
        return (args[0] - args[1]).astype(dtype)
    if op == "nonzero":
        return np.stack(np.nonzero(args[0])).astype(dtype)
    raise ValueError(f"fake engine: unknown op {op}")


class FakeContext:
    def __init__(self, engine: FakeEngine, strategy: Any) -> None:
        self.engine = engine
        self.strategy = strategy
        self.profile = 0
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_optimization_profile_async(self, profile_index: int, stream_handle: int) -> bool:
        if not 0 <= profile_index < self.engine.num_optimization_profiles:
            return False
        self.engine.device._check_stream(stream_handle)
        self.profile = profile_index
        self.shapes.clear()
        return True

    def set_input_shape(self, name: str, shape: Any) -> bool:
        tensor = self.engine.tensors.get(name)
        if tensor is None or tensor["mode"] != "INPUT":
            return False
        shape = tuple(int(d) for d in shape)
        low, _, high = self.engine.get_tensor_profile_shape(name, self.profile)
        if len(shape) != len(high) or any(not lo <= d <= hi for lo, d, hi in zip(low, shape, high, strict=True)):
            return False
        self.shapes[name] = shape
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        tensor = self.engine.tensors[name]
        if tensor["mode"] == "INPUT":
            return self.shapes.get(name, tuple(tensor["shape"]))
        op, *args = self.engine.compute[name]
        if op == "nonzero" or args[0] not in self.shapes:
            return tuple(-1 if d < 0 else d for d in tensor["shape"])
        return self.shapes[args[0]]

    def set_tensor_address(self, name: str, memory: int) -> bool:
        if name not in self.engine.tensors or memory not in self.engine.device.memory:
            return False
        self.addresses[name] = int(memory)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        engine = self.engine
        if any(n not in self.shapes for n in engine.input_names) or any(
            n not in self.addresses for n in engine.tensors
        ):
            return False
        shapes = dict(self.shapes)
        addresses = dict(self.addresses)
        out_shapes = {n: self.get_tensor_shape(n) for n in engine.output_names}

        def work() -> None:
            device = engine.device
            values = {}
            for name in engine.input_names:
                dtype = np.dtype(NUMPY[engine.tensors[name]["dtype"]])
                count = int(np.prod(shapes[name], dtype=np.int64))
                raw = bytes(device.memory[addresses[name]][: count * dtype.itemsize])
                assert len(raw) == count * dtype.itemsize, f"input buffer of {name} too small"
                values[name] = np.frombuffer(raw, dtype=dtype).reshape(shapes[name])
            for name in engine.output_names:
                op, *args = engine.compute[name]
                result = _compute(op, [values[a] for a in args], NUMPY[engine.tensors[name]["dtype"]])
                assert result.shape == out_shapes[name]
                data = np.ascontiguousarray(result).tobytes()
                buffer = device.memory[addresses[name]]
                assert len(data) <= len(buffer), f"output buffer of {name} too small"
                buffer[: len(data)] = data

        engine.device.enqueue(stream_handle, work)
        return True


class FakeEngine:
    def __init__(self, spec: dict[str, Any], device: FakeDevice) -> None:
        self.device = device
        self.spec = spec
        self.tensors = {t["name"]: t for t in spec["tensors"]}
        self.order = [t["name"] for t in spec["tensors"]]
        self.input_names = [n for n in self.order if self.tensors[n]["mode"] == "INPUT"]
        self.output_names = [n for n in self.order if self.tensors[n]["mode"] == "OUTPUT"]
        self.compute = spec.get("compute", {})
        self.profiles = spec.get("profiles") or [
            {n: [self.tensors[n]["shape"]] * 3 for n in self.input_names}
        ]
        self.contexts = 0

    @property
    def num_io_tensors(self) -> int:
        return len(self.order)

    @property
    def num_optimization_profiles(self) -> int:
        return len(self.profiles)

    def get_tensor_name(self, index: int) -> str:
        return self.order[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode[self.tensors[name]["mode"]] if name in self.tensors else TensorIOMode.NONE

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType[self.tensors[name]["dtype"]]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.tensors[name]["shape"])

    def is_shape_inference_io(self, name: str) -> bool:
        return bool(self.tensors[name].get("shape_tensor", False))

    def get_tensor_format(self, name: str) -> TensorFormat:
        return TensorFormat[self.tensors[name].get("format", "LINEAR")]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        ranges = self.profiles[profile_index][name]
        return [tuple(r) for r in ranges]

    def create_execution_context(self, strategy: Any = ExecutionContextAllocationStrategy.STATIC) -> FakeContext:
        assert isinstance(strategy, ExecutionContextAllocationStrategy)
        self.contexts += 1
        return FakeContext(self, strategy)


class Runtime:
    def __init__(self, logger: ILogger, device: FakeDevice) -> None:
        self.logger = logger
        self.device = device
        self.engine_host_code_allowed = False

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> FakeEngine | None:
        if not bytes(serialized_engine).startswith(MAGIC):
            self.logger.log(Severity.ERROR, "IRuntime::deserializeCudaEngine: Error Code 1: Serialization (magic tag)")
            return None
        return FakeEngine(json.loads(bytes(serialized_engine)[len(MAGIC) :]), self.device)


def make_fake(device: FakeDevice | None = None) -> tuple[types.SimpleNamespace, FakeDevice]:
    """``(trt, device)``: the fake TensorRT module and its device, as the backend's loader returns them."""
    device = device or FakeDevice()
    plugin_calls: list[tuple[Any, str]] = []
    trt = types.SimpleNamespace(
        __version__="10.99.0-fake",
        DataType=DataType,
        TensorIOMode=TensorIOMode,
        TensorFormat=TensorFormat,
        ExecutionContextAllocationStrategy=ExecutionContextAllocationStrategy,
        ILogger=ILogger,
        Runtime=lambda logger: Runtime(logger, device),
        init_libnvinfer_plugins=lambda logger, namespace: plugin_calls.append((logger, namespace)) or True,
        plugin_calls=plugin_calls,
    )
    return trt, device
