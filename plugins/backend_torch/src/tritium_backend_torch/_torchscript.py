"""Loading TorchScript ``model.pt`` files, reading ``forward``'s signature, and sharing loaded modules.

With ``ENABLE_WEIGHT_SHARING`` the instances of one model version on one device use a single loaded module
(one copy of the weights); :class:`SharedModules` counts the instances holding each module and drops it with
the last one. The backend object owns the registry, so there is no module-level state.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import attrs

from tritium import ConfigError, StatusCode, TritiumError

_TENSOR_KINDS = ("TensorType", "ListType")


@attrs.define(frozen=True, slots=True)
class ScriptSignature:
    """``forward``'s argument names (without ``self``) and whether it takes a single ``Dict[str, Tensor]``."""

    arguments: tuple[str, ...]
    dict_input: bool

    @classmethod
    def of(cls, module: Any) -> ScriptSignature:
        """Read the signature of a loaded ``torch.jit.ScriptModule``; ConfigError for argument types Triton
        does not pass (only tensors, lists of strings, or one dict of tensors)."""
        arguments = list(module.forward.schema.arguments)
        if arguments and arguments[0].type.kind() == "ClassType":
            arguments = arguments[1:]
        kinds = [argument.type.kind() for argument in arguments]
        if len(arguments) == 1 and kinds[0] == "DictType":
            return cls((arguments[0].name,), True)
        if "DictType" in kinds:
            raise ConfigError(
                "Multiple inputs of kind DictType were detected. Only a single input of type Dict(str, Tensor) "
                "is supported."
            )
        for argument, kind in zip(arguments, kinds, strict=True):
            if kind not in _TENSOR_KINDS:
                raise ConfigError(
                    f"An input of type '{argument.type}' was detected in the model. Only a single input of type "
                    "Dict(str, Tensor) or input(s) of type Tensor are supported."
                )
        return cls(tuple(argument.name for argument in arguments), False)


def load_module(path: Path, device: Any, model_name: str) -> Any:
    """``torch.jit.load`` onto ``device``, in eval mode; INTERNAL ``failed to load model`` when PyTorch
    cannot read the file (Triton's error)."""
    import torch

    try:
        module = torch.jit.load(str(path), map_location=device)  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise TritiumError(StatusCode.INTERNAL, f"failed to load model '{model_name}': {_first_line(exc)}") from exc
    module.eval()
    return module


class SharedModules:
    """Loaded modules shared by the instances of a model on one device (``ENABLE_WEIGHT_SHARING``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._modules: dict[tuple[str, int, int, str], list[Any]] = {}

    def acquire(self, path: Path, device: Any, model_name: str) -> tuple[Any, tuple[str, int, int, str]]:
        """The module of ``path`` on ``device``, loading it for the first instance; returns it with the key to
        :meth:`release` it by. The key includes the file's size and modification time, so a changed file
        (a reload) is loaded afresh."""
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, str(device))
        with self._lock:
            entry = self._modules.get(key)
            if entry is None:
                entry = [load_module(path, device, model_name), 0]
                self._modules[key] = entry
            entry[1] += 1
            return entry[0], key

    def release(self, key: tuple[str, int, int, str]) -> None:
        """One instance is done with the module of ``key``; the last one drops it."""
        with self._lock:
            entry = self._modules.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] <= 0:
                del self._modules[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._modules)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
