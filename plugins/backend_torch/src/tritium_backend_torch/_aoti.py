"""Loading AOTInductor packages (``model.pt2`` from ``torch._inductor.aoti_compile_and_package``).

A package is compiled code: it runs whatever tensors it is handed, and without checks a tensor of the wrong
dtype or shape gives wrong numbers, not an error. So the backend turns on the checks Inductor compiles into
every package (environment variable ``AOTI_RUNTIME_CHECK_INPUTS=1``, read by each package the first time it
runs; a value the user set is kept), and probes each loaded package once with zeros shaped by the config,
so a config whose datatypes contradict the package fails to load instead of failing every request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tritium import ConfigError, StatusCode, TritiumError
from tritium_backend_torch._callspec import CallSpec

CHECK_INPUTS_ENV = "AOTI_RUNTIME_CHECK_INPUTS"
_HANDLE = re.compile(r"input_handles\[(\d+)\]: (.*)")


def enable_input_checks() -> None:
    """Ask packages to check their inputs' dtypes, shapes and devices (unless the user decided otherwise)."""
    os.environ.setdefault(CHECK_INPUTS_ENV, "1")


def load_package(path: Path, device: Any, model_name: str) -> Any:
    """``torch._inductor.aoti_load_package`` for ``device``; INTERNAL ``failed to load model`` when PyTorch
    cannot load it, ConfigError when it was compiled for another kind of device."""
    import torch

    try:
        compiled = torch._inductor.aoti_load_package(
            str(path), device_index=device.index if device.type == "cuda" and device.index is not None else -1
        )
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raise TritiumError(
            StatusCode.INTERNAL, f"failed to load model '{model_name}': {text[0] if text else type(exc).__name__}"
        ) from exc
    compiled_for = str(compiled.loader.get_metadata().get("AOTI_DEVICE_KEY", "")).split(":")[0]
    if compiled_for and compiled_for != device.type:
        raise ConfigError(
            f"model '{model_name}': '{path.name}' was compiled for {compiled_for} but the instance runs on "
            f"{device.type}; use an instance group of the matching kind or compile the package for {device.type}"
        )
    return compiled


def call_spec(compiled: Any) -> CallSpec:
    """The names of a loaded package's inputs and outputs."""
    return CallSpec.from_strings(list(compiled.loader.get_call_spec()))


def input_error(exc: Exception, leaf_names: Mapping[int, str]) -> str:
    """A package's input-check failure with the config's tensor name in place of ``input_handles[i]``."""
    text = str(exc).strip()
    match = _HANDLE.search(text)
    if match is None:
        return text
    name = leaf_names.get(int(match.group(1)), f"#{match.group(1)}")
    return f"input '{name}': {match.group(2).strip()}"


def probe_datatypes(run: Any, probes: Sequence[Any], leaf_names: Mapping[int, str], model_name: str) -> None:
    """Run the package once on ``probes`` (zeros of the config's datatypes); ConfigError when the package
    reports a dtype other than the config's. Shape complaints are not conclusive (the probe guesses sizes
    of variable dimensions) and are left to requests."""
    try:
        run(list(probes))
    except Exception as exc:
        message = input_error(exc, leaf_names)
        if "unmatched dtype" in message:
            raise ConfigError(f"model '{model_name}' does not match its configuration: {message}") from None
