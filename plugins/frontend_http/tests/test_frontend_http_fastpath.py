"""The on-the-spot answer of small ``/infer`` requests (``_protocol.py``): byte-for-byte the answer of the
ordinary aiohttp path, in request order on a connection, cancelled with its connection, awaited by shutdown."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from tritium_frontend_http._app import HttpApp
from tritium_frontend_http._protocol import (
    PLAIN_PATH_ENV,
    SUPPORTED_AIOHTTP,
    InferenceRequestHandler,
    InferenceServer,
    aiohttp_version,
    fast_path_supported,
)
from tritium_frontend_http._settings import HttpSettings

A = list(range(16))
JSON_BODY = json.dumps(
    {
        "id": "7",
        "inputs": [
            {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": A},
            {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": A},
        ],
    }
).encode()
_HEADER = json.dumps(
    {
        "inputs": [
            {"name": f"INPUT{i}", "shape": [1, 16], "datatype": "INT32", "parameters": {"binary_data_size": 64}}
            for i in range(2)
        ],
        "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}, {"name": "OUTPUT1"}],
    }
).encode()
BINARY_BODY = _HEADER + np.arange(16, dtype=np.int32).tobytes() * 2


def post(path: str, body: bytes, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


INFER = "/v2/models/simple/infer"
CASES = {
    "json": post(INFER, JSON_BODY),
    "binary": post(INFER, BINARY_BODY, f"Inference-Header-Content-Length: {len(_HEADER)}"),
    "raw": post("/v2/models/echo/infer", np.ones(3, np.float32).tobytes(), "Inference-Header-Content-Length: 0"),
    "version": post("/v2/models/simple/versions/1/infer", JSON_BODY),
    "gzip answer": post(INFER, JSON_BODY, "Accept-Encoding: gzip"),
    "missing input": post(INFER, b'{"inputs": []}'),
    "bad json": post(INFER, b'{"inputs": [}'),
    "bad header length": post(INFER, JSON_BODY, "Inference-Header-Content-Length: x"),
    "unknown model": post("/v2/models/nope/infer", JSON_BODY),
    "decoupled": post("/v2/models/repeat/infer", JSON_BODY),
    "query": post(INFER + "?x=1", JSON_BODY),
    "gzip body": post(INFER, gzip.compress(JSON_BODY), "Content-Encoding: gzip"),
    "get": b"GET /v2/models/simple/infer HTTP/1.1\r\nHost: test\r\n\r\n",
}


async def read_response(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = dict(line.split(": ", 1) for line in lines)
    body = await reader.readexactly(int(headers.get("Content-Length", "0")))
    return status, headers, body


async def exchange(port: int, data: bytes, responses: int = 1) -> list[tuple[str, dict[str, str], bytes]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return [await asyncio.wait_for(read_response(reader), 10) for _ in range(responses)]
    finally:
        writer.close()


class Serving:
    """One InferenceServer on a free loopback port."""

    def __init__(self, service: Any, fast: bool, **options: Any) -> None:
        self.app = HttpApp(service, HttpSettings.from_options({"port": 0, **options}))
        self.fast = fast
        self.server: InferenceServer | None = None
        self.runner: web.ServerRunner | None = None
        self.port = 0

    async def __aenter__(self) -> Serving:
        self.server = InferenceServer(self.app, handler_cancellation=True, auto_decompress=False, access_log=None)
        self.server.fast_path = self.fast and self.server.fast_path
        self.runner = web.ServerRunner(self.server, handle_signals=False, shutdown_timeout=5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()
        self.app.close()


@pytest.fixture
async def pair(make_service: Any) -> AsyncIterator[tuple[Serving, Serving]]:
    service = make_service()
    async with Serving(service, fast=True) as fast, Serving(service, fast=False) as ordinary:
        yield fast, ordinary


@pytest.fixture(autouse=True)
def _both_paths_available(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests compare the two paths explicitly: the switch that makes CI's second run use the plain path
    everywhere does not apply to them."""
    monkeypatch.delenv(PLAIN_PATH_ENV, raising=False)


def test_this_aiohttp_supports_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PLAIN_PATH_ENV, raising=False)
    assert fast_path_supported()
    monkeypatch.setenv(PLAIN_PATH_ENV, "1")
    assert not fast_path_supported()


def test_the_declared_aiohttp_range_is_the_fast_paths() -> None:
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    (pin,) = [Requirement(r) for r in requires("tritium-frontend-http") or () if Requirement(r).name == "aiohttp"]
    low, high = SUPPORTED_AIOHTTP
    assert str(pin.specifier) == f"<{high[0]}.{high[1]},>={low[0]}.{low[1]}"
    assert low <= aiohttp_version() < high


def answer_later(service: Any, how: str) -> None:
    """Make ``service`` answer the fast path's requests later: ``awaited`` (an awaitable of the answer, the
    frontend awaits it in a task) or ``started`` (a Completion, answered by its listener), or at once."""
    if how == "awaited":
        service.hold = lambda: asyncio.sleep(0.001)
    elif how == "started":
        service.start_delay_s = 0.001


ANSWERED = ["synchronous", "awaited", "started"]


@pytest.mark.parametrize("how", ANSWERED)
async def test_answers_are_those_of_the_ordinary_path(pair: tuple[Serving, Serving], how: str) -> None:
    fast, ordinary = pair
    answer_later(fast.app.service, how)
    for name, request in CASES.items():
        [(status, headers, body)] = await exchange(fast.port, request)
        [(status2, headers2, body2)] = await exchange(ordinary.port, request)
        headers.pop("Date"), headers2.pop("Date")
        assert (status, headers, body) == (status2, headers2, body2), name
    assert fast.server is not None and fast.server.requests_count == ordinary.server.requests_count  # type: ignore[union-attr]


async def test_settings_apply_on_both_paths(make_service: Any) -> None:
    """Size limit, restricted inference, header forwarding: the same answers on both paths."""
    service = make_service()
    options = {
        "max_input_size": 400,
        "restricted_api": ["inference:infer-key=secret"],
        "header_forward_pattern": "^(x-fwd|triton_)",
    }
    requests = {
        "forwarded": post(INFER, JSON_BODY, "infer-key: secret", "X-Fwd-Tag: a"),
        "no key": post(INFER, JSON_BODY),
        "wrong key": post(INFER, JSON_BODY, "infer-key: wrong"),
        "too large": post(INFER, JSON_BODY + b" " * 400, "infer-key: secret"),
        "reserved": post(INFER, JSON_BODY, "infer-key: secret", "triton_x: 1"),
    }
    statuses = {}
    async with Serving(service, True, **options) as fast, Serving(service, False, **options) as ordinary:
        for name, request in requests.items():
            [(status, headers, body)] = await exchange(fast.port, request)
            fast_parameters = dict(service.last_request.parameters)
            [(status2, headers2, body2)] = await exchange(ordinary.port, request)
            headers.pop("Date"), headers2.pop("Date")
            assert (status, headers, body) == (status2, headers2, body2), name
            assert fast_parameters == service.last_request.parameters, name
            statuses[name] = status.split(" ")[1]
    assert statuses == {"forwarded": "200", "no key": "403", "wrong key": "403", "too large": "400", "reserved": "400"}
    assert fast_parameters == {"X-Fwd-Tag": "a"}  # the last request that reached the service


async def test_fast_path_answers_in_data_received(pair: tuple[Serving, Serving]) -> None:
    fast, _ = pair
    served: list[str] = []
    original = InferenceRequestHandler._serve

    def spy(self: Any, message: Any, payload: Any, model: str, version: str) -> None:
        served.append(message.path)
        original(self, message, payload, model, version)

    InferenceRequestHandler._serve = spy  # type: ignore[method-assign]
    try:
        for name in ("json", "binary", "query", "gzip body", "get"):
            await exchange(fast.port, CASES[name])
    finally:
        InferenceRequestHandler._serve = original  # type: ignore[method-assign]
    assert served == [INFER, INFER]  # a query string, a coded body, a GET: aiohttp's path


@pytest.mark.parametrize("how", ANSWERED)
async def test_pipelined_requests_are_answered_in_order(pair: tuple[Serving, Serving], how: str) -> None:
    fast, _ = pair
    answer_later(fast.app.service, how)
    health = b"GET /v2/health/ready HTTP/1.1\r\nHost: test\r\n\r\n"
    bad = CASES["missing input"]
    data = CASES["json"] + health + CASES["binary"] + bad + CASES["json"] + CASES["gzip body"] + CASES["json"]
    answers = await exchange(fast.port, data, responses=7)
    statuses = [status.split(" ", 2)[1] for status, _, _ in answers]
    assert statuses == ["200", "200", "200", "400", "200", "200", "200"]
    assert answers[1][2] == b""
    assert answers[2][1]["Content-Type"] == "application/octet-stream"
    for i in (0, 4, 5, 6):
        assert json.loads(answers[i][2])["outputs"][0]["data"] == A


async def test_connection_close_is_left_to_aiohttp(pair: tuple[Serving, Serving]) -> None:
    fast, _ = pair
    reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
    writer.write(post(INFER, JSON_BODY, "Connection: close"))
    status, _, _ = await asyncio.wait_for(read_response(reader), 10)
    assert status == "HTTP/1.1 200 OK"
    assert await asyncio.wait_for(reader.read(), 10) == b""  # and the server closed the connection
    writer.close()


async def test_a_disconnected_client_cancels_its_pending_request(pair: tuple[Serving, Serving]) -> None:
    fast, _ = pair
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    fast.app.service.hold = forever  # type: ignore[attr-defined]
    _, writer = await asyncio.open_connection("127.0.0.1", fast.port)
    writer.write(CASES["json"])
    await asyncio.wait_for(started.wait(), 10)
    writer.close()
    await asyncio.wait_for(cancelled.wait(), 10)


async def test_shutdown_waits_for_a_pending_request(make_service: Any) -> None:
    service = make_service()
    release = asyncio.Event()
    started = asyncio.Event()

    async def held() -> None:
        started.set()
        await release.wait()

    service.hold = held
    serving = Serving(service, fast=True)
    await serving.__aenter__()
    reader, writer = await asyncio.open_connection("127.0.0.1", serving.port)
    writer.write(CASES["json"])
    await asyncio.wait_for(started.wait(), 10)
    stopping = asyncio.ensure_future(serving.__aexit__())
    await asyncio.sleep(0.05)
    assert not stopping.done()
    release.set()
    status, _, body = await asyncio.wait_for(read_response(reader), 10)
    assert status == "HTTP/1.1 200 OK" and json.loads(body)["id"] == "7"
    await asyncio.wait_for(stopping, 10)
    writer.close()


async def test_a_disconnected_client_gives_up_its_started_request(pair: tuple[Serving, Serving]) -> None:
    fast, _ = pair
    service = fast.app.service
    service.start_delay_s = 3600  # type: ignore[attr-defined]
    _, writer = await asyncio.open_connection("127.0.0.1", fast.port)
    writer.write(CASES["json"])
    for _ in range(1000):
        if service.started:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.01)
    (started,) = service.started  # type: ignore[attr-defined]
    writer.close()
    for _ in range(1000):
        if started.done():
            break
        await asyncio.sleep(0.01)
    assert started.cancelled()


async def test_shutdown_waits_for_a_started_request(make_service: Any) -> None:
    service = make_service()
    service.start_delay_s = 0.3
    serving = Serving(service, fast=True)
    await serving.__aenter__()
    reader, writer = await asyncio.open_connection("127.0.0.1", serving.port)
    writer.write(CASES["json"])
    for _ in range(1000):
        if service.started:
            break
        await asyncio.sleep(0.01)
    stopping = asyncio.ensure_future(serving.__aexit__())
    await asyncio.sleep(0.05)
    assert not stopping.done()
    status, _, body = await asyncio.wait_for(read_response(reader), 10)
    assert status == "HTTP/1.1 200 OK" and json.loads(body)["id"] == "7"
    await asyncio.wait_for(stopping, 10)
    writer.close()
