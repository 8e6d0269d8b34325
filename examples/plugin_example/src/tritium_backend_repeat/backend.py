"""The ``repeat`` backend: Triton's ``repeat_int32`` QA model, as a Tritium backend.

A repeat model has the inputs

* ``IN``    INT32  ``[-1]``: the values to send back,
* ``DELAY`` UINT32 ``[-1]`` (optional): milliseconds to sleep before each response (one per ``IN`` element),
* ``WAIT``  UINT32 ``[1]``  (optional): milliseconds to wait after the last response, before the final flag,

and the outputs ``OUT`` INT32 and ``IDX`` UINT32. Served **decoupled**
(``model_transaction_policy { decoupled: true }``), it sends one response per element of ``IN``
(``OUT = [IN[i]]``, ``IDX = [i]``, both of shape ``[1]``) and then the final flag. Served normally, it
answers once with ``OUT = IN`` and ``IDX = [0, 1, ...]`` (shape ``[-1]``, batched when
``max_batch_size > 0``), so the same model works with ``/infer``.

The version folder holds ``model.repeat``, a small JSON object (``{}`` is fine) whose presence marks the
version. Its optional keys: ``"decoupled"`` (bool: the transaction policy auto-complete fills in when the
config sets none) and ``"delay_ms"`` (int: the delay before each response when a request sends no
``DELAY``; default: the config parameter ``delay_ms``, else the backend option ``default-delay-ms``, else 0).

The config's ``parameters`` tune a model without touching its file::

    parameters { key: "delay_ms" value { string_value: "5" } }
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

import tritium

if TYPE_CHECKING:
    from tritium.config import ModelConfig

BACKEND_NAME = "repeat"
MODEL_FILENAME = "model.repeat"

INT32 = tritium.DataType.INT32
UINT32 = tritium.DataType.UINT32
INPUTS: dict[str, tuple[tritium.DataType, tuple[int, ...], bool]] = {
    # name: (datatype, dims, optional)
    "IN": (INT32, (-1,), False),
    "DELAY": (UINT32, (-1,), True),
    "WAIT": (UINT32, (1,), True),
}
OUTPUTS: dict[str, tritium.DataType] = {"OUT": INT32, "IDX": UINT32}


@attrs.define(frozen=True)
class ModelFile:
    """The content of ``model.repeat``."""

    decoupled: bool | None = None
    delay_ms: int | None = None

    @classmethod
    def read(cls, path: Path) -> ModelFile:
        """Parse ``path``; raise :class:`tritium.ConfigError` naming the file when it is not valid."""
        try:
            data = json.loads(path.read_text(encoding="utf-8") or "{}")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise tritium.ConfigError(f"{path}: not a repeat model file: {exc}") from None
        if not isinstance(data, dict):
            raise tritium.ConfigError(f"{path}: a repeat model file holds a JSON object")
        unknown = sorted(set(data) - {"decoupled", "delay_ms"})
        if unknown:
            raise tritium.ConfigError(f"{path}: unknown keys {unknown}; expected 'decoupled', 'delay_ms'")
        decoupled, delay = data.get("decoupled"), data.get("delay_ms")
        if decoupled is not None and not isinstance(decoupled, bool):
            raise tritium.ConfigError(f"{path}: 'decoupled' must be true or false")
        if delay is not None and (not isinstance(delay, int) or isinstance(delay, bool) or delay < 0):
            raise tritium.ConfigError(f"{path}: 'delay_ms' must be a non-negative integer")
        return cls(decoupled=decoupled, delay_ms=delay)


def _is_decoupled(config: ModelConfig) -> bool:
    return bool(config.model_transaction_policy.decoupled)


def _output_dims(config: ModelConfig) -> list[int]:
    return [1] if _is_decoupled(config) else [-1]


def check_config(config: ModelConfig) -> None:
    """Raise :class:`tritium.ConfigError` when ``config`` does not describe a repeat model."""
    where = f"repeat model '{config.name}'"
    if _is_decoupled(config) and config.max_batch_size > 0:
        raise tritium.ConfigError(f"{where}: a decoupled repeat model does not batch; set max_batch_size: 0")
    for tensor in config.input:
        if tensor.name not in INPUTS:
            raise tritium.ConfigError(f"{where}: unexpected input '{tensor.name}'; expected IN, DELAY, WAIT")
        _check_datatype(where, tensor, INPUTS[tensor.name][0])
    if "IN" not in {t.name for t in config.input}:
        raise tritium.ConfigError(f"{where}: input 'IN' is missing")
    for tensor in config.output:
        if tensor.name not in OUTPUTS:
            raise tritium.ConfigError(f"{where}: unexpected output '{tensor.name}'; expected OUT, IDX")
        _check_datatype(where, tensor, OUTPUTS[tensor.name])


def _check_datatype(where: str, tensor: Any, datatype: tritium.DataType) -> None:
    if tensor.data_type != datatype.config_enum:
        raise tritium.ConfigError(f"{where}: '{tensor.name}' must have data_type {datatype.config_name}")


class RepeatBackend(tritium.Backend):
    """Creates repeat model instances. ``options`` are the ``--backend-config=repeat,<key>=<value>``
    settings; this backend reads ``default-delay-ms``."""

    def __init__(self, options: Mapping[str, str]) -> None:
        try:
            self.default_delay_ms = int(options.get("default-delay-ms", "0"))
        except ValueError:
            raise tritium.ConfigError("--backend-config=repeat,default-delay-ms must be an integer") from None

    def availability(self) -> str | None:
        return None  # pure Python: always usable

    def auto_complete_config(self, source: tritium.ModelSource, config: ModelConfig) -> ModelConfig:
        """Fill what the config leaves out, never overriding what it sets: the transaction policy from the
        model file's ``decoupled``, the inputs when none are given, the outputs when none are given, and
        the data type and dims of inputs/outputs named without them."""
        model = ModelFile.read(source.model_file) if source.model_file.is_file() else ModelFile()
        completed = type(config)()
        completed.CopyFrom(config)
        if not completed.HasField("model_transaction_policy") and model.decoupled:
            completed.model_transaction_policy.decoupled = True
        if not len(completed.input):
            for name, (datatype, dims, optional) in INPUTS.items():
                completed.input.add(name=name, data_type=datatype.config_enum, dims=dims, optional=optional)
        for tensor in completed.input:
            if tensor.name in INPUTS:
                datatype, dims, _ = INPUTS[tensor.name]
                if not tensor.data_type:
                    tensor.data_type = datatype.config_enum
                if not len(tensor.dims):
                    tensor.dims.extend(dims)
        if not len(completed.output):
            for name in OUTPUTS:
                completed.output.add(name=name)
        for tensor in completed.output:
            if tensor.name in OUTPUTS:
                if not tensor.data_type:
                    tensor.data_type = OUTPUTS[tensor.name].config_enum
                if not len(tensor.dims):
                    tensor.dims.extend(_output_dims(completed))
        check_config(completed)
        return completed

    def create_instance(
        self, source: tritium.ModelSource, config: ModelConfig, placement: tritium.InstancePlacement
    ) -> tritium.ModelInstance:
        """Check the config (auto-complete may be off) and read the model file; a bad one is a load
        error naming the file."""
        check_config(config)
        model = ModelFile.read(source.model_file)
        delay = self.default_delay_ms
        if "delay_ms" in config.parameters:  # parameters { key: "delay_ms" value { string_value: "5" } }
            text = config.parameters["delay_ms"].string_value
            if not text.isdigit():
                raise tritium.ConfigError(
                    f"model '{config.name}': parameter 'delay_ms' must be a whole number, got {text!r}"
                )
            delay = int(text)
        if model.delay_ms is not None:
            delay = model.delay_ms
        return RepeatInstance(batching=config.max_batch_size > 0, default_delay_ms=delay)


def _sleep_ms(ms: float) -> None:
    if ms > 0:
        time.sleep(ms / 1000.0)


class RepeatInstance(tritium.ModelInstance):
    """One instance of a repeat model. Holds no framework state, so instances are independent."""

    def __init__(self, *, batching: bool, default_delay_ms: int = 0) -> None:
        self.batching = batching
        self.default_delay_ms = default_delay_ms

    def execute_decoupled(self, request: tritium.InferenceRequest, send: tritium.ResponseSender) -> None:
        """One response per element of IN (after its DELAY), then WAIT, then the final flag."""
        values = request.inputs["IN"].data.reshape(-1)
        delays = self._delays(request, values.size)
        wanted = {o.name for o in request.requested_outputs}
        for index, value in enumerate(values):
            _sleep_ms(delays[index])
            outputs = {
                "OUT": np.array([value], dtype=np.int32),
                "IDX": np.array([index], dtype=np.uint32),
            }
            send({k: v for k, v in outputs.items() if not wanted or k in wanted}, False)
        wait = request.inputs.get("WAIT")
        _sleep_ms(float(wait.data.reshape(-1)[0]) if wait is not None and wait.data.size else 0)
        send(None, True)

    def execute(self, batch: tritium.Batch) -> Mapping[str, np.ndarray[Any, Any]]:
        """The non-decoupled form: OUT = IN and IDX = 0..n-1, after the longest request's delays."""
        values = batch.inputs["IN"]
        delay = batch.inputs.get("DELAY")
        wait = batch.inputs.get("WAIT")
        rows = values.shape[0] if self.batching else 1
        longest = 0.0
        for row in range(rows):
            row_delays = (delay[row] if self.batching else delay) if delay is not None else None
            row_wait = (wait[row] if self.batching else wait) if wait is not None else None
            total = (
                float(np.sum(row_delays, dtype=np.float64))
                if row_delays is not None
                else (self.default_delay_ms * values.shape[-1])
            )
            total += float(row_wait.reshape(-1)[0]) if row_wait is not None and row_wait.size else 0.0
            longest = max(longest, total)
        _sleep_ms(longest)
        index = np.broadcast_to(np.arange(values.shape[-1], dtype=np.uint32), values.shape)
        outputs = {"OUT": np.array(values, dtype=np.int32), "IDX": np.array(index)}
        wanted = batch.requested_outputs
        return {k: v for k, v in outputs.items() if not wanted or k in wanted}

    def _delays(self, request: tritium.InferenceRequest, count: int) -> np.ndarray[Any, Any]:
        delay = request.inputs.get("DELAY")
        if delay is None:
            return np.full(count, self.default_delay_ms, dtype=np.float64)
        delays = delay.data.reshape(-1)
        if delays.size != count:
            raise tritium.TritiumError.invalid_arg(
                f"DELAY must have one element per element of IN ({count}), got {delays.size}"
            )
        return delays.astype(np.float64)

    def close(self) -> None:
        """Nothing to release (a framework backend frees its session here; make it safe to call twice)."""
