"""``FrontendConformance``: the tests every frontend (network protocol) inherits.

The tests start a real in-process :class:`tritium.Server` holding identity models (fake backend, see
:mod:`tritium.testing.fakes`), create your frontend from its :class:`tritium.FrontendSpec` on a free
loopback port, and talk to it through a small protocol-neutral client adapter you write with your
protocol's client library (:class:`FrontendClient`)::

    class TestMyFrontend(FrontendConformance):
        supported_datatypes = tuple(DataType)          # what your protocol can carry

        @pytest.fixture
        def frontend_spec(self):
            return plugin.tritium_register_frontends()[0]

        def frontend_options(self, port):
            return {"port": port, "address": "127.0.0.1"}

        def make_client(self, frontend, port):
            return MyClientAdapter(f"127.0.0.1:{port}")

:class:`tritium.testing.fakes.LoopbackClient` is a complete (in-process) adapter to start from.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs
import numpy as np
import pytest

from tritium._base.datatypes import DataType
from tritium._base.options import ServerOptions
from tritium._base.specs import FrontendSpec
from tritium._base.tensors import Tensor
from tritium._runtime.server import Server
from tritium.abc import Frontend
from tritium.testing import fakes
from tritium.testing.builders import random_array

__all__ = ["FrontendClient", "FrontendConformance", "FrontendHarness", "free_port"]

_TIMEOUT_S = 30.0
SLOW_MODEL_DELAY_MS = 400


@runtime_checkable
class FrontendClient(Protocol):
    """What the conformance tests need from a client of your protocol. Every method is async.

    Metadata answers use the KServe v2 JSON shapes (which gRPC messages mirror): ``server_metadata`` ->
    ``{"name", "version", "extensions": [...]}``; ``model_metadata`` -> ``{"name", "versions": [str],
    "platform", "inputs": [{"name", "datatype", "shape": [int]}], "outputs": [...]}``. ``infer`` sends the
    tensors (``Tensor.datatype`` is the wire datatype) and returns the outputs by name, BYTES as object
    arrays of ``bytes``. Server errors are raised as any exception whose text holds the server's message.
    ``stream_infer`` returns every response of a decoupled model; raise ``NotImplementedError`` when your
    protocol has no streaming. ``live``/``ready`` may raise instead of returning False when the server
    cannot be reached.
    """

    async def live(self) -> bool: ...

    async def ready(self) -> bool: ...

    async def model_ready(self, model: str) -> bool: ...

    async def server_metadata(self) -> Mapping[str, Any]: ...

    async def model_metadata(self, model: str) -> Mapping[str, Any]: ...

    async def infer(
        self, model: str, inputs: Sequence[Tensor], outputs: Sequence[str] | None = None
    ) -> Mapping[str, np.ndarray[Any, Any]]: ...

    async def stream_infer(
        self, model: str, inputs: Sequence[Tensor]
    ) -> Sequence[Mapping[str, np.ndarray[Any, Any]]]: ...

    async def close(self) -> None: ...


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (taken from the OS by binding port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def model_name(datatype: DataType) -> str:
    """The conformance repository's identity model for ``datatype``."""
    return f"identity_{datatype.value.lower()}"


def write_conformance_repository(repo: Path) -> Path:
    """The models the frontend tests use: a batching identity model per datatype (``identity_fp32`` ...),
    ``identity_nobatch`` (two FP32 ``[2, -1]`` inputs), ``slow`` (FP32, 400 ms per execution) and
    ``decoupled`` (INT32, three responses per request)."""
    for datatype in DataType:
        fakes.write_identity_model(repo, model_name(datatype), datatype, (-1,), 8)
    fakes.write_identity_model(repo, "identity_nobatch", DataType.FP32, (2, -1), 0, inputs=2)
    fakes.write_identity_model(repo, "slow", DataType.FP32, (-1,), 0, execute_delay_ms=SLOW_MODEL_DELAY_MS)
    fakes.write_identity_model(repo, "decoupled", DataType.INT32, (-1,), 0, decoupled=True, decoupled_repeat=3)
    return repo


@attrs.define
class FrontendHarness:
    """A running server, the frontend under test (started) and a client connected to it."""

    server: Server
    frontend: Frontend
    client: FrontendClient
    port: int


def _assert_same(got: np.ndarray[Any, Any], expected: np.ndarray[Any, Any], what: str) -> None:
    got = np.asarray(got)
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    if expected.dtype == object:
        assert [bytes(x) for x in got.reshape(-1)] == list(expected.reshape(-1)), f"{what}: BYTES differ"
        return
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype}, expected {expected.dtype}"
    assert np.array_equal(got, expected), f"{what}: values differ"


def _metadata_view(md: Mapping[str, Any]) -> dict[str, Any]:
    def tensors(items: Any) -> list[tuple[str, str, list[int]]]:
        return [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in items]

    return {
        "name": md["name"],
        "versions": [str(v) for v in md.get("versions", [])],
        "platform": md.get("platform", ""),
        "inputs": tensors(md.get("inputs", [])),
        "outputs": tensors(md.get("outputs", [])),
    }


class FrontendConformance:
    """Inherited tests of a :class:`tritium.Frontend`.

    Provide the fixture ``frontend_spec`` and the methods ``make_client`` (and ``frontend_options`` when
    your option names differ from ``port``/``address``). Class attributes: ``supported_datatypes`` (the
    datatypes your protocol carries; the round-trip test is skipped for others) and
    ``stop_timeout_s`` (how long ``stop`` may take with a request in flight).
    """

    supported_datatypes: ClassVar[Sequence[DataType]] = tuple(DataType)
    stop_timeout_s: ClassVar[float] = 10.0

    # --------------------------------------------------------------------------- what to provide
    @pytest.fixture
    def frontend_spec(self) -> FrontendSpec:
        """The spec of the frontend under test (as its plugin registers it)."""
        pytest.fail(f"{type(self).__name__} must provide the fixture 'frontend_spec'")

    def frontend_options(self, port: int) -> Mapping[str, Any]:
        """Options making the frontend listen on 127.0.0.1:``port`` (merged over the spec's defaults)."""
        return {"port": port, "address": "127.0.0.1"}

    def make_client(self, frontend: Frontend, port: int) -> FrontendClient:
        """A client of your protocol talking to the frontend on 127.0.0.1:``port``."""
        pytest.fail(f"{type(self).__name__} must implement make_client(frontend, port)")

    # ----------------------------------------------------------------------------------- harness
    @pytest.fixture
    def conformance_repository(self, tmp_path: Path) -> Path:
        """The model repository served (see :func:`write_conformance_repository`)."""
        return write_conformance_repository(tmp_path / "models")

    @asynccontextmanager
    async def serving(self, spec: FrontendSpec, repository: Path) -> AsyncIterator[FrontendHarness]:
        """Start a server on ``repository``, the frontend on a free port, and a client; stop all three."""
        options = ServerOptions(model_repositories=(str(repository),), exit_timeout_secs=5.0)
        server = Server(options, plugins=[("conformance_fakes", fakes.fake_plugin)])
        await server.start()
        frontend: Frontend | None = None
        client: FrontendClient | None = None
        try:
            port = free_port()
            resolved = {o.name: o.default for o in spec.options}
            resolved.update(self.frontend_options(port))
            frontend = spec.factory(server.service, resolved)
            await asyncio.wait_for(frontend.start(), _TIMEOUT_S)
            client = self.make_client(frontend, port)
            yield FrontendHarness(server, frontend, client, port)
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.close()
            if frontend is not None:
                await asyncio.wait_for(frontend.stop(), _TIMEOUT_S)
            await server.stop()

    # ------------------------------------------------------------------------------------- health
    @pytest.mark.asyncio
    async def test_live_and_ready(self, frontend_spec: FrontendSpec, conformance_repository: Path) -> None:
        async with self.serving(frontend_spec, conformance_repository) as h:
            assert await h.client.live() is True
            assert await h.client.ready() is True
            assert await h.client.model_ready(model_name(DataType.FP32)) is True
            assert await h.client.model_ready("no_such_model") is False

    @pytest.mark.asyncio
    async def test_server_metadata(self, frontend_spec: FrontendSpec, conformance_repository: Path) -> None:
        async with self.serving(frontend_spec, conformance_repository) as h:
            got = await h.client.server_metadata()
            expected = h.server.service.server_metadata()
        assert got["name"] == expected["name"]
        assert got["version"] == expected["version"]
        assert set(got.get("extensions", [])) == set(expected["extensions"])

    @pytest.mark.asyncio
    async def test_model_metadata(self, frontend_spec: FrontendSpec, conformance_repository: Path) -> None:
        async with self.serving(frontend_spec, conformance_repository) as h:
            for name in (model_name(DataType.INT32), "identity_nobatch"):
                got = await h.client.model_metadata(name)
                assert _metadata_view(got) == _metadata_view(h.server.service.model_metadata(name))

    # ------------------------------------------------------------------------------------ inference
    @pytest.mark.asyncio
    @pytest.mark.parametrize("datatype", list(DataType), ids=lambda d: d.value)
    async def test_infer_round_trip(
        self, frontend_spec: FrontendSpec, conformance_repository: Path, datatype: DataType
    ) -> None:
        if datatype not in self.supported_datatypes:
            pytest.skip(f"this protocol does not carry {datatype.value}")
        data = random_array(datatype, (2, 5), np.random.default_rng(3))
        async with self.serving(frontend_spec, conformance_repository) as h:
            outputs = await asyncio.wait_for(
                h.client.infer(model_name(datatype), [Tensor("INPUT0", datatype, data)]), _TIMEOUT_S
            )
        _assert_same(outputs["OUTPUT0"], data, f"{datatype.value} OUTPUT0")

    @pytest.mark.asyncio
    async def test_infer_returns_only_requested_outputs(
        self, frontend_spec: FrontendSpec, conformance_repository: Path
    ) -> None:
        a = np.arange(6, dtype=np.float32).reshape(2, 3)
        b = -a
        inputs = [Tensor("INPUT0", DataType.FP32, a), Tensor("INPUT1", DataType.FP32, b)]
        async with self.serving(frontend_spec, conformance_repository) as h:
            both = await h.client.infer("identity_nobatch", inputs)
            one = await h.client.infer("identity_nobatch", inputs, ["OUTPUT1"])
        _assert_same(both["OUTPUT0"], a, "OUTPUT0")
        _assert_same(both["OUTPUT1"], b, "OUTPUT1")
        assert sorted(one) == ["OUTPUT1"], f"asked for OUTPUT1, got {sorted(one)}"
        _assert_same(one["OUTPUT1"], b, "OUTPUT1")

    @pytest.mark.asyncio
    async def test_concurrent_requests_get_their_own_answers(
        self, frontend_spec: FrontendSpec, conformance_repository: Path
    ) -> None:
        arrays = [np.full((1, 4), i, dtype=np.int32) for i in range(16)]
        model = model_name(DataType.INT32)
        async with self.serving(frontend_spec, conformance_repository) as h:
            results = await asyncio.wait_for(
                asyncio.gather(*(h.client.infer(model, [Tensor("INPUT0", DataType.INT32, a)]) for a in arrays)),
                _TIMEOUT_S,
            )
        for array, result in zip(arrays, results, strict=True):
            _assert_same(result["OUTPUT0"], array, "OUTPUT0")

    @pytest.mark.asyncio
    async def test_errors_reach_the_client(self, frontend_spec: FrontendSpec, conformance_repository: Path) -> None:
        data = np.zeros((1, 3), dtype=np.float32)
        async with self.serving(frontend_spec, conformance_repository) as h:
            with pytest.raises(Exception) as unknown:
                await h.client.infer("no_such_model", [Tensor("INPUT0", DataType.FP32, data)])
            assert "no_such_model" in str(unknown.value)
            with pytest.raises(Exception) as wrong:
                await h.client.infer(model_name(DataType.INT32), [Tensor("INPUT0", DataType.FP32, data)])
            assert "INPUT0" in str(wrong.value)
            # The frontend still serves after errors.
            outputs = await h.client.infer(model_name(DataType.FP32), [Tensor("INPUT0", DataType.FP32, data)])
        _assert_same(outputs["OUTPUT0"], data, "OUTPUT0")

    @pytest.mark.asyncio
    async def test_stream_infer_of_a_decoupled_model(
        self, frontend_spec: FrontendSpec, conformance_repository: Path
    ) -> None:
        data = np.array([4, 5, 6], dtype=np.int32)
        async with self.serving(frontend_spec, conformance_repository) as h:
            try:
                responses = await asyncio.wait_for(
                    h.client.stream_infer("decoupled", [Tensor("INPUT0", DataType.INT32, data)]), _TIMEOUT_S
                )
            except NotImplementedError:
                pytest.skip("this protocol has no streaming")
        with_data = [r for r in responses if r]
        assert len(with_data) == 3, f"expected 3 responses with data, got {len(with_data)}"
        for response in with_data:
            _assert_same(response["OUTPUT0"], data, "OUTPUT0")

    # ------------------------------------------------------------------------------------ lifecycle
    @pytest.mark.asyncio
    async def test_stop_answers_requests_in_flight(
        self, frontend_spec: FrontendSpec, conformance_repository: Path
    ) -> None:
        data = np.array([1.5, 2.5], dtype=np.float32)
        async with self.serving(frontend_spec, conformance_repository) as h:
            task = asyncio.ensure_future(h.client.infer("slow", [Tensor("INPUT0", DataType.FP32, data)]))
            deadline = time.monotonic() + _TIMEOUT_S
            while getattr(h.server.service, "in_flight", 1) < 1 and not task.done():
                assert time.monotonic() < deadline, "the request never reached the server"
                await asyncio.sleep(0.005)
            started = time.monotonic()
            await asyncio.wait_for(h.frontend.stop(), self.stop_timeout_s)
            outputs = await asyncio.wait_for(task, _TIMEOUT_S)
            waited = time.monotonic() - started
        _assert_same(outputs["OUTPUT0"], data, "OUTPUT0 of the request in flight during stop")
        assert waited < self.stop_timeout_s

    @pytest.mark.asyncio
    async def test_stop_is_idempotent_and_stops_serving(
        self, frontend_spec: FrontendSpec, conformance_repository: Path
    ) -> None:
        async with self.serving(frontend_spec, conformance_repository) as h:
            assert await h.client.live() is True
            await asyncio.wait_for(h.frontend.stop(), _TIMEOUT_S)
            await asyncio.wait_for(h.frontend.stop(), _TIMEOUT_S)
            still_live: bool | None = None
            try:
                still_live = await asyncio.wait_for(h.client.live(), _TIMEOUT_S)
            except Exception:
                still_live = None
            assert not still_live, "the frontend still answers after stop()"

    @pytest.mark.asyncio
    async def test_start_is_idempotent(self, frontend_spec: FrontendSpec, conformance_repository: Path) -> None:
        async with self.serving(frontend_spec, conformance_repository) as h:
            await asyncio.wait_for(h.frontend.start(), _TIMEOUT_S)
            assert await h.client.live() is True
            text = h.frontend.describe()
        assert isinstance(text, str) and text and "\n" not in text, f"describe() gave {text!r}"
