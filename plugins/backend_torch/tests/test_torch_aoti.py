"""AOTInductor packages (``platform: "torch_aoti"``, ``model.pt2``): naming, checks, auto-complete, conformance.

Two packages are compiled once for the module (a C++ compiler is needed; ~15 s each): Triton's add/sub with a
dynamic batch dimension, and the nested args/kwargs/dict model of Triton's pytorch_backend README.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from tritium_backend_torch import TorchBackend

from tritium import Batch, ConfigError, StatusCode, TritiumError
from tritium.config import normalize_model_config
from tritium.testing import BackendConformance

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(not any(shutil.which(c) for c in ("c++", "g++", "clang++")), reason="no C++ compiler"),
]


class AddSub(torch.nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return a + b, a - b


class Nested(torch.nn.Module):
    """The shape of the README's example: two args, a dict arg, keyword args; a dict result."""

    def forward(self, h, v, options, *, kwarg1, kw_arg2):
        return {
            "AAA": h + v,
            "ZZZ": h - v,
            "BBB": (h * 2, v * 3),
            "CCC": {"keyA": options["keyA"] + 1, "key2": options["key2"] + 2},
            "DDD": {"KA": kwarg1 * kw_arg2, "KB": kw_arg2.to(torch.int64)},
        }


def _export(module, args, kwargs, path: Path, dynamic_shapes=None) -> Path:
    from torch.fx.experimental import _config as fx_config

    with fx_config.patch(backed_size_oblivious=True):  # let dynamic dimensions take size 1
        exported = torch.export.export(module, args, kwargs, dynamic_shapes=dynamic_shapes)
    torch._inductor.aoti_compile_and_package(exported, package_path=str(path))
    return path


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("aoti-packages")
    batch = torch.export.Dim.DYNAMIC
    x = torch.zeros(2, 4)
    add_sub = _export(AddSub(), (x, x.clone()), {}, out / "add_sub.pt2", ({0: batch}, {0: batch}))
    s = torch.zeros(1, 3)
    nested = _export(
        Nested(), (s, s.clone(), {"keyA": s.clone(), "key2": s.clone()}),
        {"kwarg1": s.clone(), "kw_arg2": s.clone()}, out / "nested.pt2",
    )
    return {"add_sub": add_sub, "nested": nested}


def write(tmp_path: Path, packages, kind: str, config_text: str, name: str = "m"):
    from google.protobuf import text_format

    from tritium import ModelSource
    from tritium.config import ModelConfig

    version_dir = tmp_path / name / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(packages[kind], version_dir / "model.pt2")
    config = text_format.Parse(config_text, ModelConfig())
    config.name, config.backend, config.platform = name, "pytorch", "torch_aoti"
    config.default_model_filename = "model.pt2"
    source = ModelSource(name=name, version=1, model_dir=version_dir.parent, version_dir=version_dir,
                         model_file=version_dir / "model.pt2")
    return source, config


def load(tmp_path, packages, kind, config_text, backend=None):
    backend = backend or TorchBackend({})
    source, config = write(tmp_path, packages, kind, config_text)
    config = normalize_model_config(backend.auto_complete_config(source, config), model_name="m", source="m")
    from tritium.testing.fakes import placement

    return backend.create_instance(source, config, placement(config))


def run(instance, inputs, batch_size=0):
    return instance.execute(Batch(inputs, frozenset(), (), batch_size))


ADD_SUB_ORDINAL = """
    max_batch_size: 8
    input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] },
            { name: "INPUT__1" data_type: TYPE_FP32 dims: [ 4 ] } ]
    output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 4 ] },
             { name: "OUTPUT__1" data_type: TYPE_FP32 dims: [ 4 ] } ]
"""


class TestAotiConformance(BackendConformance):
    @pytest.fixture
    def backend(self):
        return TorchBackend({})

    @pytest.fixture(params=["ordinal", "forward_names"])
    def model_source_and_config(self, request, tmp_path, packages):
        if request.param == "ordinal":
            return write(tmp_path, packages, "add_sub", ADD_SUB_ORDINAL, "ordinal")
        return write(tmp_path, packages, "add_sub", """
            max_batch_size: 8
            input [ { name: "ARGS[1]" data_type: TYPE_FP32 dims: [ 4 ] },
                    { name: "ARGS[0]" data_type: TYPE_FP32 dims: [ 4 ] } ]
            output [ { name: "RESULT[1]" data_type: TYPE_FP32 dims: [ 4 ] } ]
        """, "forward_names")


def test_batches_of_any_size(tmp_path, packages):
    instance = load(tmp_path, packages, "add_sub", ADD_SUB_ORDINAL)
    for n in (1, 2, 7):
        a = np.arange(4 * n, dtype=np.float32).reshape(n, 4)
        out = run(instance, {"INPUT__0": a, "INPUT__1": np.ones_like(a)}, n)
        np.testing.assert_array_equal(out["OUTPUT__0"], a + 1)
        np.testing.assert_array_equal(out["OUTPUT__1"], a - 1)


def test_readme_names_and_ordinals_address_the_same_tensors(tmp_path, packages):
    def t(name):
        return f'{{ name: "{name}" data_type: TYPE_FP32 dims: [ 1, 3 ] }}'

    outputs = ["RESULT[ZZZ]", "OUTPUT__0", "RESULT[BBB][1]", "RESULT[CCC][key2]", "RESULT[DDD][KA]"]
    instance = load(tmp_path, packages, "nested", f"""
        input [ {t("KWARGS[kw_arg2]")}, {t("ARGS[2][keyA]")}, {t("INPUT__1")}, {t("ARGS[0]")}, {t("INPUT__3")},
                {t("KWARGS[kwarg1]")} ]
        output [ {", ".join(t(n) for n in outputs)}, {{ name: "OUTPUT__7" data_type: TYPE_INT64 dims: [ 1, 3 ] }} ]
    """)
    h, v, key_a, key2, k1, k2 = (np.full((1, 3), value, np.float32) for value in (10, 3, 5, 7, 2, 4))
    out = run(instance, {"ARGS[0]": h, "INPUT__1": v, "ARGS[2][keyA]": key_a, "INPUT__3": key2,
                         "KWARGS[kwarg1]": k1, "KWARGS[kw_arg2]": k2})
    np.testing.assert_array_equal(out["OUTPUT__0"], h + v)
    np.testing.assert_array_equal(out["RESULT[ZZZ]"], h - v)
    np.testing.assert_array_equal(out["RESULT[BBB][1]"], v * 3)
    np.testing.assert_array_equal(out["RESULT[CCC][key2]"], key2 + 2)
    np.testing.assert_array_equal(out["RESULT[DDD][KA]"], k1 * k2)
    assert out["OUTPUT__7"].dtype == np.int64
    np.testing.assert_array_equal(out["OUTPUT__7"], k2.astype(np.int64))


def test_a_config_leaving_an_input_out_or_naming_a_wrong_one(tmp_path, packages):
    with pytest.raises(ConfigError, match=r"leaves out INPUT__1 \(ARGS\[1\]\)"):
        load(tmp_path, packages, "add_sub", """
            max_batch_size: 8
            input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
            output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
        """)
    with pytest.raises(ConfigError, match=r"valid names are INPUT__0, INPUT__1 or ARGS\[0\], ARGS\[1\]"):
        load(tmp_path, packages, "add_sub", """
            max_batch_size: 8
            input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] },
                    { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]
            output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
        """)


def test_a_config_contradicting_the_package_datatypes_fails_to_load(tmp_path, packages):
    with pytest.raises(ConfigError, match=r"input 'INPUT__0': unmatched dtype"):
        load(tmp_path, packages, "add_sub", ADD_SUB_ORDINAL.replace("TYPE_FP32", "TYPE_INT32"))


def test_shapes_the_package_refuses_are_invalid_arg_not_wrong_numbers(tmp_path, packages):
    instance = load(tmp_path, packages, "add_sub", ADD_SUB_ORDINAL.replace("dims: [ 4 ]", "dims: [ -1 ]"))
    with pytest.raises(TritiumError) as info:
        run(instance, {"INPUT__0": np.ones((1, 5), np.float32), "INPUT__1": np.ones((1, 5), np.float32)}, 1)
    assert info.value.code is StatusCode.INVALID_ARG
    assert "rejected input 'INPUT__0': unmatched dim value at 1" in info.value.message


def test_strings_are_refused(tmp_path, packages):
    with pytest.raises(ConfigError, match="unsupported datatype TYPE_STRING for input 'INPUT__0'"):
        load(tmp_path, packages, "add_sub", ADD_SUB_ORDINAL.replace("TYPE_FP32", "TYPE_STRING", 1))


def test_auto_complete_only_when_asked(tmp_path, packages):
    source, config = write(tmp_path, packages, "add_sub", "max_batch_size: 8")
    assert TorchBackend({}).auto_complete_config(source, config) == config
    completed = TorchBackend({"aoti-auto-complete": "true"}).auto_complete_config(source, config)
    assert [(t.name, t.data_type, list(t.dims)) for t in completed.input] == [
        ("INPUT__0", 11, [4]), ("INPUT__1", 11, [4])]
    assert [(t.name, t.data_type, list(t.dims)) for t in completed.output] == [
        ("OUTPUT__0", 11, [4]), ("OUTPUT__1", 11, [4])]
    assert TorchBackend({"aoti-auto-complete": "true"}).auto_complete_config(source, completed) == completed
    instance = load(tmp_path, packages, "add_sub", "max_batch_size: 8", TorchBackend({"aoti-auto-complete": "1"}))
    out = run(instance, {"INPUT__0": np.ones((3, 4), np.float32), "INPUT__1": np.ones((3, 4), np.float32)}, 3)
    np.testing.assert_array_equal(out["OUTPUT__0"], np.full((3, 4), 2, np.float32))


def test_auto_complete_of_a_fixed_size_package(tmp_path, packages):
    source, config = write(tmp_path, packages, "nested", "")
    completed = TorchBackend({"aoti-auto-complete": "true"}).auto_complete_config(source, config)
    assert [list(t.dims) for t in completed.input] == [[1, 3]] * 6
    assert [t.name for t in completed.output] == [f"OUTPUT__{i}" for i in range(8)]
    assert completed.output[7].data_type == 9  # TYPE_INT64
    with pytest.raises(ConfigError, match="first dimension is not variable"):
        TorchBackend({"aoti-auto-complete": "true"}).auto_complete_config(
            source, write(tmp_path, packages, "nested", "max_batch_size: 4")[1])
