"""End to end: TLS, mutual TLS and restricted protocols on real ``tritium serve`` processes, with the test
certificates the HTTPS tests use (``tls_certificates`` in tests/conftest.py) and NVIDIA's unmodified
tritonclient."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.timeout(180)

pytest.importorskip("cryptography.x509")  # tls_certificates (tests/conftest.py) generates them with it


def _serve_simple(factory: Any, repository: Path, *flags: str) -> Any:
    return factory(
        f"--model-repository={repository}", "--model-control-mode=explicit", "--load-model=simple", *flags
    )


@pytest.fixture(scope="module")
def tls_server(tritium_serve_factory: Any, example_repository: Path, tls_certificates: dict[str, Path]) -> Any:
    return _serve_simple(
        tritium_serve_factory,
        example_repository,
        "--grpc-use-ssl=true",
        f"--grpc-server-cert={tls_certificates['server']}",
        f"--grpc-server-key={tls_certificates['server_key']}",
    )


@pytest.fixture(scope="module")
def mtls_server(tritium_serve_factory: Any, example_repository: Path, tls_certificates: dict[str, Path]) -> Any:
    return _serve_simple(
        tritium_serve_factory,
        example_repository,
        "--grpc-use-ssl-mutual=true",
        f"--grpc-server-cert={tls_certificates['server']}",
        f"--grpc-server-key={tls_certificates['server_key']}",
        f"--grpc-root-cert={tls_certificates['ca']}",
    )


@pytest.fixture(scope="module")
def restricted_server(tritium_serve_factory: Any, example_repository: Path) -> Any:
    return _serve_simple(
        tritium_serve_factory,
        example_repository,
        "--grpc-restricted-protocol=model-repository,model-config,statistics:admin-key=admin-secret",
        "--grpc-restricted-protocol=inference:infer-key=infer-secret",
    )


def _infer(client: Any, **kw: Any) -> np.ndarray:
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = []
    for name in ("INPUT0", "INPUT1"):
        tensor = grpcclient.InferInput(name, [1, 16], "INT32")
        tensor.set_data_from_numpy(a)
        inputs.append(tensor)
    return client.infer("simple", inputs, **kw).as_numpy("OUTPUT0")


def test_tls(tls_server: Any, tls_certificates: dict[str, Path]) -> None:
    with grpcclient.InferenceServerClient(
        tls_server.grpc_address, ssl=True, root_certificates=str(tls_certificates["ca"])
    ) as client:
        assert client.is_server_ready()
        assert _infer(client).tolist() == [list(range(0, 32, 2))]
    with grpcclient.InferenceServerClient(tls_server.grpc_address) as plain:
        with pytest.raises(InferenceServerException) as info:
            plain.is_server_live(client_timeout=5)
        assert info.value.status() in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")


async def test_tls_aio(tls_server: Any, tls_certificates: dict[str, Path]) -> None:
    async with aioclient.InferenceServerClient(
        tls_server.grpc_address, ssl=True, root_certificates=str(tls_certificates["ca"])
    ) as client:
        assert await client.is_server_live()


def test_mutual_tls(mtls_server: Any, tls_certificates: dict[str, Path]) -> None:
    with grpcclient.InferenceServerClient(
        mtls_server.grpc_address,
        ssl=True,
        root_certificates=str(tls_certificates["ca"]),
        private_key=str(tls_certificates["client_key"]),
        certificate_chain=str(tls_certificates["client"]),
    ) as client:
        assert client.is_server_ready()
        assert _infer(client).shape == (1, 16)
    with grpcclient.InferenceServerClient(
        mtls_server.grpc_address, ssl=True, root_certificates=str(tls_certificates["ca"])
    ) as anonymous, pytest.raises(InferenceServerException):
        anonymous.is_server_live(client_timeout=5)


def test_restricted_protocols(restricted_server: Any) -> None:
    admin = {"triton-grpc-protocol-admin-key": "admin-secret"}
    infer = {"triton-grpc-protocol-infer-key": "infer-secret"}
    with grpcclient.InferenceServerClient(restricted_server.grpc_address) as client:
        assert client.is_server_ready()  # health is not restricted
        assert client.get_model_metadata("simple").name == "simple"  # nor metadata
        for call, headers, header in (
            (lambda h: client.get_model_config("simple", headers=h), admin, "triton-grpc-protocol-admin-key"),
            (lambda h: client.get_inference_statistics("simple", headers=h), admin, "triton-grpc-protocol-admin-key"),
            (lambda h: client.get_model_repository_index(headers=h), admin, "triton-grpc-protocol-admin-key"),
            (lambda h: _infer(client, headers=h), infer, "triton-grpc-protocol-infer-key"),
        ):
            with pytest.raises(InferenceServerException) as info:
                call(None)
            assert info.value.status() == "StatusCode.UNAVAILABLE"
            assert info.value.message() == f"This protocol is restricted, expecting header '{header}'"
            with pytest.raises(InferenceServerException):
                call({header: "wrong"})
            call(headers)
