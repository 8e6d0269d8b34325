"""One model instance: a TensorFlow session (possibly shared, see ``MAX_SESSION_SHARE_COUNT``) and the
callables that feed the config's inputs and fetch its outputs.

A ``Session.make_callable`` per combination of fed inputs and fetched outputs is made on first use and kept
(there are at most as many as output subsets clients ask for, and usually one), so an execution costs one
call into TensorFlow plus the per-tensor reshapes worked out when the instance was created.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tritium import Batch, FailureReason, ModelInstance, StatusCode, TritiumError
from tritium_backend_tf._signature import ModelSignature

if TYPE_CHECKING:
    from tritium.config import ModelConfig

Array = np.ndarray[Any, Any]
Reshape = Callable[[Array], Array]


class SharedSession:
    """A session with the number of instances using it; closed when the last one lets go."""

    def __init__(
        self, session: Any, signature: ModelSignature, on_close: Callable[[SharedSession], None] | None = None
    ) -> None:
        self.session = session
        self.signature = signature
        self._on_close = on_close
        self._users = 0
        self._lock = threading.Lock()

    def acquire(self) -> SharedSession:
        with self._lock:
            self._users += 1
        return self

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            if self._on_close is not None:
                self._on_close(self)
            self.session.close()


class TensorFlowInstance(ModelInstance):
    """Runs batches on one TensorFlow session."""

    def __init__(self, shared: SharedSession, *, model_name: str, config: ModelConfig) -> None:
        self._shared: SharedSession | None = shared
        self._model_name = model_name
        signature = shared.signature
        self._feeds = {t.name: info.tensor_name for t in config.input if (info := signature.input(t.name))}
        self._fetches = {t.name: info.tensor_name for t in config.output if (info := signature.output(t.name))}
        self._all_outputs = tuple(output.name for output in config.output)
        self._input_reshapes = _input_reshapes(config, signature)
        self._output_reshapes = _output_reshapes(config, signature)
        self._callables: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}

    def execute(self, batch: Batch) -> Mapping[str, Array]:
        """Run the session on the batch's inputs, fetching only the requested outputs."""
        shared = self._shared
        if shared is None:
            raise TritiumError.unavailable(f"model '{self._model_name}' instance is closed")
        inputs = tuple(name for name in batch.inputs if name in self._feeds)
        outputs = self._output_names(batch.requested_outputs)
        run = self._callables.get((inputs, outputs))
        if run is None:
            run = self._make_callable(shared.session, inputs, outputs)
        arrays = []
        for name in inputs:
            array = batch.inputs[name]
            reshape = self._input_reshapes.get(name)
            arrays.append(reshape(array) if reshape is not None else array)
        try:
            results = run(*arrays)
        except TritiumError:
            raise
        except Exception as exc:
            raise runtime_error(exc) from exc
        produced: dict[str, Array] = {}
        for name, result in zip(outputs, results, strict=True):
            reshape = self._output_reshapes.get(name)
            produced[name] = reshape(result) if reshape is not None else result
        return produced

    def close(self) -> None:
        """Let go of the session (closed once no instance shares it); safe to call twice."""
        shared, self._shared = self._shared, None
        self._callables.clear()
        if shared is not None:
            shared.release()

    def _output_names(self, requested: frozenset[str]) -> tuple[str, ...]:
        if not requested:
            return self._all_outputs
        unknown = requested - self._fetches.keys()
        if unknown:
            raise TritiumError.invalid_arg(
                f"unexpected inference output '{sorted(unknown)[0]}' for model '{self._model_name}'"
            )
        return tuple(sorted(requested))

    def _make_callable(self, session: Any, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> Any:
        try:
            graph = session.graph
            run = session.make_callable(
                [graph.get_tensor_by_name(self._fetches[name]) for name in outputs],
                [graph.get_tensor_by_name(self._feeds[name]) for name in inputs],
            )
        except Exception as exc:
            raise runtime_error(exc) from exc
        self._callables[(inputs, outputs)] = run
        return run


def runtime_error(exc: Exception) -> TritiumError:
    """A TensorFlow failure as Triton reports it: INTERNAL with TensorFlow's message."""
    message = getattr(exc, "message", None) or str(exc)
    return TritiumError(StatusCode.INTERNAL, f"tensorflow error: {message.strip()}", reason=FailureReason.BACKEND)


def _input_reshapes(config: ModelConfig, signature: ModelSignature) -> dict[str, Reshape]:
    """Model inputs of rank 0 served as dims [1] (a non-batching model's scalar) get their shape back."""
    reshapes: dict[str, Reshape] = {}
    for tensor in config.input:
        info = signature.input(tensor.name)
        if info is not None and info.dims == () and config.max_batch_size == 0 and not tensor.HasField("reshape"):
            reshapes[tensor.name] = _reshaper((), False)
    return reshapes


def _output_reshapes(config: ModelConfig, signature: ModelSignature) -> dict[str, Reshape]:
    """Outputs the config reshapes (or a scalar served as [1]) are put back into the config's dims."""
    reshapes: dict[str, Reshape] = {}
    batching = config.max_batch_size > 0
    for tensor in config.output:
        info = signature.output(tensor.name)
        if info is None or not (tensor.HasField("reshape") or info.dims == ()):
            continue
        reshapes[tensor.name] = _reshaper(tuple(int(d) for d in tensor.dims), batching)
    return reshapes


def _reshaper(dims: tuple[int, ...], batching: bool) -> Reshape:
    """Reshape to ``[batch] + dims`` (batching; the batch size is the array's first dim) or ``dims``."""
    if batching:
        return lambda array: array.reshape((array.shape[0] if array.ndim else 1, *dims))
    return lambda array: array.reshape(dims)
