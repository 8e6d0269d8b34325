"""Fixtures of the pytorch backend's tests: TorchScript modules written by code, and model folders.

Test modules run with ``--import-mode=importlib`` and cannot import each other, so the module builders are
handed out through the ``torch_models`` fixture and the folder writer through ``write_model``.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format

from tritium import InstancePlacement, ModelSource
from tritium.config import ModelConfig

torch = pytest.importorskip("torch")


def pytest_configure(config: pytest.Config) -> None:
    # PyTorch 2.13 marks torch.jit.script/save/load deprecated; TorchScript is what pytorch_libtorch serves.
    config.addinivalue_line("filterwarnings", r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")


# --------------------------------------------------------------------------------------------- modules
class AddSub(torch.nn.Module):
    """forward(a, b) -> (a + b, a - b)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return a + b, a - b


class Identity(torch.nn.Module):
    """forward(x) -> x (a copy, so outputs never alias inputs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


class DictAdd(torch.nn.Module):
    """forward({"a": .., "b": ..}) -> a + b * 2."""

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return inputs["a"] + inputs["b"] * 2


class Strings(torch.nn.Module):
    """forward(words: List[str], scale) -> (upper-cased words, lengths * scale)."""

    def forward(self, words: list[str], scale: torch.Tensor) -> tuple[list[str], torch.Tensor]:
        lengths = torch.tensor([len(w) for w in words], dtype=torch.int64)
        return [w.upper() for w in words], lengths * scale.reshape(-1)


class Failing(torch.nn.Module):
    """forward(x) -> x * 2, raising for any negative element."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x < 0).any()):
            raise RuntimeError("negative input")
        return x * 2


class ReturnsDict(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y": x}


class ReturnsInt64(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.int64)


class ReturnsScalar(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum()


class InPlace(torch.nn.Module):
    """Writes into its input: the backend must hand it a tensor of its own."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.add_(1)
        return x * 1


class Scaled(torch.nn.Module):
    """x * w with a weight parameter, to see weights shared (or not) between instances."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.full((4,), 3.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w


class TakesInt(torch.nn.Module):
    def forward(self, x: torch.Tensor, n: int) -> torch.Tensor:
        return x * n


MODULES = {
    "add_sub": AddSub,
    "identity": Identity,
    "dict_add": DictAdd,
    "strings": Strings,
    "failing": Failing,
    "returns_dict": ReturnsDict,
    "returns_int64": ReturnsInt64,
    "returns_scalar": ReturnsScalar,
    "in_place": InPlace,
    "scaled": Scaled,
    "takes_int": TakesInt,
}


def scripted_bytes(kind: str) -> bytes:
    """The TorchScript archive of module ``kind``."""
    import io

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(MODULES[kind]()), buffer)
    return buffer.getvalue()


def parse_config(text: str = "") -> Any:
    """A ModelConfig from protobuf text."""
    return text_format.Parse(text, ModelConfig())


def write_model(
    root: Path, name: str, kind: str | bytes, config_text: str = "", *, filename: str = "model.pt", version: int = 1
) -> tuple[ModelSource, Any]:
    """Lay out ``root/name/version/<filename>`` (module ``kind`` scripted, or raw bytes) plus config.pbtxt;
    return the ModelSource and the parsed config (backend/platform set as the kernel sets them)."""
    model_dir = root / name
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    model_file = version_dir / filename
    model_file.write_bytes(kind if isinstance(kind, bytes) else scripted_bytes(kind))
    (model_dir / "config.pbtxt").write_text(config_text)
    config = parse_config(config_text)
    config.name = config.name or name
    config.backend = config.backend or "pytorch"
    config.platform = config.platform or ("torch_aoti" if filename.endswith(".pt2") else "pytorch_libtorch")
    source = ModelSource(
        name=name, version=version, model_dir=model_dir, version_dir=version_dir, model_file=model_file
    )
    return source, config


def cpu_placement(index: int = 0, name: str = "m") -> InstancePlacement:
    return InstancePlacement(name=f"{name}_{index}", kind="CPU", device_id=0, group_name=name, index=index)


@pytest.fixture
def torch_models() -> types.SimpleNamespace:
    """The builders of this conftest, for test modules."""
    return types.SimpleNamespace(
        MODULES=MODULES,
        scripted_bytes=scripted_bytes,
        parse_config=parse_config,
        write_model=write_model,
        cpu_placement=cpu_placement,
    )
