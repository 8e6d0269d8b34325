"""One TensorRT model instance: execution contexts (one per optimization profile), a CUDA stream, device
buffers, and optionally captured CUDA graphs.

An execution, with TensorRT 10's named-tensor API:

1. pick the instance's profile closest to the input shapes (:mod:`._profiles`);
2. when a CUDA graph was captured for exactly these shapes, copy the inputs into its buffers, launch it,
   copy the outputs back;
3. otherwise ``set_input_shape`` for every input, read each output's shape from the context, make the device
   buffers big enough, copy inputs in, ``set_tensor_address`` for every I/O tensor, ``execute_async_v3`` on
   the instance's stream, copy the requested outputs out, synchronize.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np

from tritium import Batch, ModelInstance, TritiumError
from tritium_backend_tensorrt._cuda import DeviceApi
from tritium_backend_tensorrt._engine import EngineInfo, Shape, TensorInfo
from tritium_backend_tensorrt._profiles import ProfileRange, select_profile
from tritium_backend_tensorrt._settings import GraphSpec, ModelSettings

_log = logging.getLogger("tritium.backend.tensorrt")


def _text(shape: Shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


@attrs.define(slots=True)
class _Buffer:
    pointer: int
    capacity: int


@attrs.define(slots=True)
class _Graph:
    """A captured CUDA graph with the device buffers it was captured on and its output shapes."""

    handle: int
    buffers: dict[str, _Buffer]
    output_shapes: dict[str, Shape]


@attrs.define(slots=True)
class _Context:
    profile: int
    context: Any
    ranges: Mapping[str, ProfileRange]
    graphs: dict[tuple[tuple[str, Shape], ...], _Graph] = attrs.field(factory=dict)


class TensorRTInstance(ModelInstance):
    """Executes batches on one GPU with one execution context per optimization profile of its group."""

    def __init__(
        self,
        *,
        name: str,
        engine: Any,
        info: EngineInfo,
        trt: Any,
        device: DeviceApi,
        device_id: int,
        profiles: tuple[int, ...],
        settings: ModelSettings,
        max_batch_size: int,
        release: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._release = release
        self._engine = engine
        self._info = info
        self._device = device
        self._device_id = device_id
        self._max_batch_size = max_batch_size
        self._inputs = info.inputs
        self._outputs = info.outputs
        self._buffers: dict[str, _Buffer] = {}
        self._contexts: list[_Context] = []
        self._closed = False
        device.set_device(device_id)
        self._stream = device.create_stream()
        try:
            strategy = getattr(trt.ExecutionContextAllocationStrategy, settings.allocation_strategy)
            for profile in profiles:
                context = self._create_context(strategy, profile)
                self._contexts.append(_Context(profile, context, info.profiles[profile]))
            device.synchronize(self._stream)
            if settings.cuda_graphs:
                for spec in settings.graph_specs:
                    self._capture(spec)
        except BaseException:
            self._release = None  # the caller releases the engine when construction fails
            self.close()
            raise

    @property
    def profiles(self) -> tuple[int, ...]:
        """The optimization profiles this instance executes with (one execution context each)."""
        return tuple(c.profile for c in self._contexts)

    @property
    def graph_keys(self) -> list[tuple[int, dict[str, Shape]]]:
        """(profile, input shapes) of every captured CUDA graph."""
        return [(c.profile, dict(key)) for c in self._contexts for key in c.graphs]

    def _create_context(self, strategy: Any, profile: int) -> Any:
        context = self._engine.create_execution_context(strategy)
        if context is None:
            raise TritiumError.internal(f"unable to create TensorRT context for '{self.name}'")
        if profile != 0 and not context.set_optimization_profile_async(profile, self._stream):
            raise TritiumError.internal(
                f"Can not set the specified optimization profile {profile} for {self.name}. Expected "
                f"optimization profile index range 0-{len(self._info.profiles) - 1}"
            )
        return context

    # ----------------------------------------------------------------------------------- execute
    def execute(self, batch: Batch) -> Mapping[str, np.ndarray]:
        if self._closed:
            raise TritiumError.unavailable(f"model instance '{self.name}' is closed")
        if self._max_batch_size and batch.batch_size > self._max_batch_size:
            raise TritiumError.internal(
                f"batch size {batch.batch_size} for '{self.name}', max allowed is {self._max_batch_size}"
            )
        self._device.set_device(self._device_id)
        arrays = self._host_inputs(batch.inputs)
        shapes = {name: tuple(int(d) for d in a.shape) for name, a in arrays.items()}
        context = self._choose(shapes)
        wanted = [t for t in self._outputs if not batch.requested_outputs or t.name in batch.requested_outputs]
        graph = context.graphs.get(tuple(sorted(shapes.items())))
        if graph is not None:
            return self._run_graph(graph, arrays, wanted)
        return self._run(context, arrays, wanted)

    def _host_inputs(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = {}
        for tensor in self._inputs:
            value = inputs.get(tensor.name)
            if value is None:
                raise TritiumError.invalid_arg(
                    f"expected input '{tensor.name}' for model '{self.name}': TensorRT engines need every input"
                )
            assert tensor.datatype is not None  # checked at load
            arrays[tensor.name] = np.ascontiguousarray(value, dtype=tensor.datatype.numpy_dtype)
        return arrays

    def _choose(self, shapes: Mapping[str, Shape]) -> _Context:
        index = select_profile([(c.profile, c.ranges) for c in self._contexts], shapes)
        return next(c for c in self._contexts if c.profile == index)

    def _bind_shapes(self, context: _Context, shapes: Mapping[str, Shape]) -> dict[str, Shape]:
        for name, shape in shapes.items():
            if not context.context.set_input_shape(name, shape):
                raise TritiumError.invalid_arg(
                    f"trt failed to set input shape {_text(shape)} for input '{name}' of '{self.name}' "
                    f"(profile {context.profile})"
                )
        output_shapes = {}
        for tensor in self._outputs:
            shape = tuple(int(d) for d in context.context.get_tensor_shape(tensor.name))
            if any(d < 0 for d in shape):
                raise TritiumError.unsupported(
                    f"output '{tensor.name}' of '{self.name}' has a data-dependent shape {_text(shape)}; "
                    "engines whose output shapes depend on input values are not supported"
                )
            output_shapes[tensor.name] = shape
        return output_shapes

    def _ensure(self, buffers: dict[str, _Buffer], name: str, nbytes: int) -> _Buffer:
        buffer = buffers.get(name)
        if buffer is None or buffer.capacity < nbytes:
            if buffer is not None:
                self._device.free(buffer.pointer)
                del buffers[name]
            capacity = max(nbytes, 256)
            buffer = _Buffer(self._device.malloc(capacity), capacity)
            buffers[name] = buffer
        return buffer

    def _nbytes(self, tensor: TensorInfo, shape: Shape) -> int:
        assert tensor.datatype is not None
        return int(np.prod(shape, dtype=np.int64)) * np.dtype(tensor.datatype.numpy_dtype).itemsize

    def _bind_buffers(
        self, context: _Context, buffers: dict[str, _Buffer], arrays: Mapping[str, np.ndarray],
        output_shapes: Mapping[str, Shape],
    ) -> None:
        for tensor in self._inputs:
            buffer = self._ensure(buffers, tensor.name, arrays[tensor.name].nbytes)
            if not context.context.set_tensor_address(tensor.name, buffer.pointer):
                raise TritiumError.internal(f"trt failed to set the address of input '{tensor.name}'")
        for tensor in self._outputs:
            buffer = self._ensure(buffers, tensor.name, self._nbytes(tensor, output_shapes[tensor.name]))
            if not context.context.set_tensor_address(tensor.name, buffer.pointer):
                raise TritiumError.internal(f"trt failed to set the address of output '{tensor.name}'")

    def _copy_in(self, buffers: Mapping[str, _Buffer], arrays: Mapping[str, np.ndarray]) -> None:
        for name, array in arrays.items():
            self._device.copy_to_device(buffers[name].pointer, array, self._stream)

    def _copy_out(
        self, buffers: Mapping[str, _Buffer], wanted: list[TensorInfo], shapes: Mapping[str, Shape]
    ) -> dict[str, np.ndarray]:
        outputs = {}
        for tensor in wanted:
            assert tensor.datatype is not None
            array = np.empty(shapes[tensor.name], dtype=tensor.datatype.numpy_dtype)
            self._device.copy_to_host(array, buffers[tensor.name].pointer, self._stream)
            outputs[tensor.name] = array
        self._device.synchronize(self._stream)
        return outputs

    def _enqueue(self, context: _Context) -> None:
        if not context.context.execute_async_v3(self._stream):
            raise TritiumError.internal(f"unable to enqueue for inference {self.name}")

    def _run(
        self, context: _Context, arrays: Mapping[str, np.ndarray], wanted: list[TensorInfo]
    ) -> dict[str, np.ndarray]:
        output_shapes = self._bind_shapes(context, {n: tuple(a.shape) for n, a in arrays.items()})
        self._bind_buffers(context, self._buffers, arrays, output_shapes)
        self._copy_in(self._buffers, arrays)
        self._enqueue(context)
        return self._copy_out(self._buffers, wanted, output_shapes)

    def _run_graph(
        self, graph: _Graph, arrays: Mapping[str, np.ndarray], wanted: list[TensorInfo]
    ) -> dict[str, np.ndarray]:
        self._copy_in(graph.buffers, arrays)
        self._device.launch_graph(graph.handle, self._stream)
        return self._copy_out(graph.buffers, wanted, graph.output_shapes)

    # -------------------------------------------------------------------------------- CUDA graphs
    def _graph_shapes(self, spec: GraphSpec) -> dict[str, Shape] | None:
        shapes = {}
        for tensor in self._inputs:
            inner = spec.inputs.get(tensor.name, tensor.shape[1:] if spec.batch_size else tensor.shape)
            shape = (spec.batch_size, *inner) if spec.batch_size else tuple(inner)
            if any(d < 0 for d in shape):
                return None
            shapes[tensor.name] = shape
        return shapes

    def _capture(self, spec: GraphSpec) -> None:
        """Capture one graph per profile that holds the spec's shapes (Triton captures per context too).
        A spec whose shapes are not all known, or fit no profile, is skipped with a warning."""
        shapes = self._graph_shapes(spec)
        if shapes is None:
            _log.warning("%s: CUDA graph for batch size %d skipped: give the dynamic input dims in graph_spec",
                         self.name, spec.batch_size)
            return
        for context in self._contexts:
            if not all(context.ranges[n].holds(s) for n, s in shapes.items() if n in context.ranges):
                continue
            buffers: dict[str, _Buffer] = {}
            handle: int | None = None
            try:
                output_shapes = self._bind_shapes(context, shapes)
                arrays = {
                    t.name: np.zeros(shapes[t.name], dtype=t.datatype.numpy_dtype)  # type: ignore[union-attr]
                    for t in self._inputs
                }
                self._bind_buffers(context, buffers, arrays, output_shapes)
                self._copy_in(buffers, arrays)
                self._enqueue(context)  # TensorRT needs one enqueue with these shapes before a capture
                self._device.synchronize(self._stream)
                self._device.begin_capture(self._stream)
                try:
                    self._enqueue(context)
                finally:
                    handle = self._device.end_capture(self._stream)
            except BaseException:
                if handle is not None:
                    self._device.destroy_graph(handle)
                for buffer in buffers.values():
                    self._device.free(buffer.pointer)
                raise
            context.graphs[tuple(sorted(shapes.items()))] = _Graph(handle, buffers, output_shapes)

    # -------------------------------------------------------------------------------------- close
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._device.set_device(self._device_id)
            self._device.synchronize(self._stream)
        except TritiumError:
            _log.exception("synchronizing %s before close failed", self.name)
        for context in self._contexts:
            for graph in context.graphs.values():
                self._device.destroy_graph(graph.handle)
                for buffer in graph.buffers.values():
                    self._device.free(buffer.pointer)
            context.graphs.clear()
            context.context = None
        self._contexts.clear()
        for buffer in self._buffers.values():
            self._device.free(buffer.pointer)
        self._buffers.clear()
        self._device.destroy_stream(self._stream)
        self._engine = None
        if self._release is not None:
            self._release()  # the engine is shared by the model's instances on this GPU
