"""GPU instances (``KIND_GPU``): device placement, a CUDA stream per instance, tensors kept on the device.

Marked ``gpu``: every test skips on a machine without CUDA (this one has none; see docs/backend-torch.md).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from tritium_backend_torch import TorchBackend

from tritium import Batch, InstancePlacement
from tritium.config import normalize_model_config

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


class OnDevice(torch.nn.Module):
    """x * 2 + 1, refusing inputs that are not on a CUDA device (the backend must copy them there)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_cuda:
            raise RuntimeError("input is not on the GPU")
        return x * 2 + 1


CONFIG = """
    max_batch_size: 8
    input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
    output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]
    instance_group [ { kind: KIND_GPU count: 2 gpus: [ 0 ] } ]
"""


def gpu(index: int, device_id: int = 0) -> InstancePlacement:
    return InstancePlacement(name=f"m_{index}", kind="GPU", device_id=device_id, group_name="m", index=index)


def write(tmp_path, config_text):
    import io

    from google.protobuf import text_format

    from tritium import ModelSource
    from tritium.config import ModelConfig

    version_dir = tmp_path / "m" / "1"
    version_dir.mkdir(parents=True)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(OnDevice()), buffer)
    (version_dir / "model.pt").write_bytes(buffer.getvalue())
    config = text_format.Parse(config_text, ModelConfig())
    config.name, config.backend, config.platform = "m", "pytorch", "pytorch_libtorch"
    source = ModelSource(name="m", version=1, model_dir=version_dir.parent, version_dir=version_dir,
                         model_file=version_dir / "model.pt")
    return source, normalize_model_config(config, model_name="m", source="m")


def run(instance, x):
    return instance.execute(Batch({"INPUT__0": x}, frozenset(), (), len(x)))["OUTPUT__0"]


def test_gpu_instances_run_on_their_device_with_their_own_stream(tmp_path):
    source, config = write(tmp_path, CONFIG)
    backend = TorchBackend({})
    one, two = (backend.create_instance(source, config, gpu(i)) for i in range(2))
    assert one.device.torch_device == torch.device("cuda", 0)
    assert one.device.stream is not None and two.device.stream is not None
    assert one.device.stream != two.device.stream
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    out = run(one, x)
    assert isinstance(out, np.ndarray)  # copied back to the host once
    np.testing.assert_array_equal(out, x * 2 + 1)


def test_two_gpu_instances_execute_concurrently_with_correct_results(tmp_path):
    source, config = write(tmp_path, CONFIG)
    backend = TorchBackend({})
    instances = [backend.create_instance(source, config, gpu(i)) for i in range(2)]
    inputs = [np.full((8, 4), i, np.float32) for i in range(64)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda i: run(instances[i % 2], inputs[i]), range(64)))
    for x, out in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(out, x * 2 + 1)


def test_cache_cleaning_weight_sharing_and_cudnn_parameters(tmp_path):
    source, config = write(tmp_path, CONFIG + """
        parameters { key: "ENABLE_CACHE_CLEANING" value { string_value: "true" } }
        parameters { key: "ENABLE_WEIGHT_SHARING" value { string_value: "true" } }
        parameters { key: "DISABLE_CUDNN" value { string_value: "true" } }
    """)
    backend = TorchBackend({})
    one, two = (backend.create_instance(source, config, gpu(i)) for i in range(2))
    assert one.module is two.module
    np.testing.assert_array_equal(run(one, np.ones((1, 4), np.float32)), np.full((1, 4), 3, np.float32))
    assert torch.backends.cudnn.enabled is False
    torch.backends.cudnn.enabled = True


def test_each_listed_gpu_gets_its_instances(tmp_path):
    count = torch.cuda.device_count()
    source, config = write(tmp_path, CONFIG)
    backend = TorchBackend({})
    for device_id in range(count):
        instance = backend.create_instance(source, config, gpu(0, device_id))
        assert instance.device.torch_device == torch.device("cuda", device_id)
        np.testing.assert_array_equal(run(instance, np.zeros((1, 4), np.float32)), np.ones((1, 4), np.float32))


def test_aoti_package_compiled_for_cuda(tmp_path):
    from torch.fx.experimental import _config as fx_config

    class AddOne(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1

    x = torch.zeros(2, 4, device="cuda")
    with fx_config.patch(backed_size_oblivious=True):
        exported = torch.export.export(AddOne().cuda(), (x,), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
    version_dir = tmp_path / "a" / "1"
    version_dir.mkdir(parents=True)
    torch._inductor.aoti_compile_and_package(exported, package_path=str(version_dir / "model.pt2"))
    from google.protobuf import text_format

    from tritium import ModelSource
    from tritium.config import ModelConfig

    config = text_format.Parse(CONFIG, ModelConfig())
    config.name, config.backend, config.platform = "a", "pytorch", "torch_aoti"
    config.default_model_filename = "model.pt2"
    config = normalize_model_config(config, model_name="a", source="a")
    source = ModelSource(name="a", version=1, model_dir=version_dir.parent, version_dir=version_dir,
                         model_file=version_dir / "model.pt2")
    instance = TorchBackend({}).create_instance(source, config, gpu(0))
    np.testing.assert_array_equal(run(instance, np.zeros((3, 4), np.float32)), np.ones((3, 4), np.float32))
