"""Opt-in auto-complete of a ``torch_aoti`` model's inputs and outputs from its AOTInductor package.

Triton auto-completes no PyTorch model; this is Tritium's own extension, on only with
``--backend-config=pytorch,aoti-auto-complete=true``. A package keeps no tensor metadata PyTorch exposes, so
the facts come from two places:

- inputs: the input checks Inductor compiles into the package's wrapper source (``*.wrapper.cpp``, shipped
  in the archive): each input's dtype, and which dimensions are fixed (and to what) or variable;
- outputs: running the package twice on zeros with different sizes for the variable dimensions; output
  dimensions that follow them are variable (-1).

Inputs and outputs get the ordinal names ``INPUT__<i>`` / ``OUTPUT__<i>``. Only an empty input (output)
list is filled; a config that names its tensors is left alone. With ``max_batch_size > 0`` the first
dimension is the batch and must be variable in every input.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tritium import ConfigError, DataType
from tritium_backend_torch._callspec import ordinal_name
from tritium_backend_torch._datatypes import datatype_of

if TYPE_CHECKING:
    from tritium.config import ModelConfig

_CHECK = re.compile(r"static void check_input_(\d+)\(.*?\n}\n", re.DOTALL)
_DTYPE = re.compile(r"_expected_dtype = aoti_torch_dtype_(\w+)\(\)")
_FIXED = re.compile(r"if \((-?\d+) != \w+_size\[(\d+)\]\)")
_BOUNDED = re.compile(r"if \(\w+_size\[(\d+)\] [<>] ")
_STRIDE = re.compile(r"\w+_stride\[(\d+)\]")
_PROBE_SIZES = (2, 3)


def input_specs(path: Path) -> list[tuple[DataType, list[int]]]:
    """``(datatype, dims)`` of each package input in call order (-1 for a variable dimension); ConfigError
    when the archive holds no wrapper source with input checks."""
    try:
        with zipfile.ZipFile(path) as archive:
            sources = [n for n in archive.namelist() if n.endswith(".wrapper.cpp")]
            text = "\n".join(archive.read(n).decode("utf-8", "replace") for n in sources)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"cannot read AOTInductor package '{path}': {exc}") from None
    checks = {int(m.group(1)): m.group(0) for m in _CHECK.finditer(text)}
    if not checks or sorted(checks) != list(range(len(checks))):
        raise ConfigError(
            f"'{path.name}' holds no input checks to auto-complete from; write the inputs and outputs in "
            "config.pbtxt"
        )
    specs = []
    for index in range(len(checks)):
        body = checks[index]
        dtype = _DTYPE.search(body)
        datatype = datatype_of(dtype.group(1)) if dtype is not None else None
        if datatype is None:
            raise ConfigError(f"input {index} of '{path.name}' has a dtype Triton has no datatype for")
        fixed = {int(dim): int(size) for size, dim in _FIXED.findall(body)}
        used = {int(d) for d in _BOUNDED.findall(body)} | {int(d) for d in _STRIDE.findall(body)} | set(fixed)
        rank = max(used) + 1 if used else 0
        specs.append((datatype, [fixed.get(dim, -1) for dim in range(rank)]))
    return specs


def complete_from_package(config: ModelConfig, path: Path, *, model_name: str) -> ModelConfig:
    """``config`` with its empty input and output lists filled from the package at ``path``."""
    if len(config.input) and len(config.output):
        return config
    specs = input_specs(path)
    batching = config.max_batch_size > 0
    if batching and any(not dims or dims[0] != -1 for _, dims in specs):
        raise ConfigError(
            f"model '{model_name}' sets max_batch_size {config.max_batch_size} but its package has an input "
            "whose first dimension is not variable"
        )
    completed = type(config)()
    completed.CopyFrom(config)
    if not len(completed.input):
        for index, (datatype, dims) in enumerate(specs):
            completed.input.add(
                name=ordinal_name("input", index), data_type=datatype.config_enum, dims=dims[1:] if batching else dims
            )
    if not len(completed.output):
        for index, (datatype, dims) in enumerate(_output_specs(path, specs)):
            completed.output.add(
                name=ordinal_name("output", index), data_type=datatype.config_enum, dims=dims[1:] if batching else dims
            )
    return completed


def _output_specs(path: Path, inputs: list[tuple[DataType, list[int]]]) -> list[tuple[DataType, list[int]]]:
    import torch

    from tritium_backend_torch._aoti import enable_input_checks, load_package
    from tritium_backend_torch._datatypes import to_numpy, to_tensor

    enable_input_checks()
    compiled = load_package(path, torch.device("cpu"), path.parent.parent.name)
    shapes: list[list[tuple[int, ...]]] = []
    datatypes: list[DataType] = []
    for size in _PROBE_SIZES:
        flat = [
            to_tensor(np.zeros([d if d >= 0 else size for d in dims], dtype=dt.numpy_dtype), torch.device("cpu"))
            for dt, dims in inputs
        ]
        try:
            results: list[Any] = list(compiled.loader.run(flat))
        except Exception as exc:
            raise ConfigError(f"cannot auto-complete the outputs of '{path.name}': {exc}") from None
        shapes.append([tuple(to_numpy(r).shape) for r in results])
        datatypes = []
        for result in results:
            datatype = datatype_of(result.dtype)
            if datatype is None:
                raise ConfigError(f"'{path.name}' returns a {result.dtype} tensor, which Triton has no datatype for")
            datatypes.append(datatype)
    out = []
    for datatype, first, second in zip(datatypes, shapes[0], shapes[1], strict=True):
        out.append((datatype, [a if a == b else -1 for a, b in zip(first, second, strict=True)]))
    return out
