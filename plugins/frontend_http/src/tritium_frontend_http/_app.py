"""The HTTP request handler: Triton's URL routing, restrictions, and one method per endpoint.

Routing follows ``HTTPAPIServer::Handle`` (exact regexes and order); a path's route is computed once and
cached, so the inference hot path is a dict lookup, a body read, the codec and the data plane. Every
endpoint checks its API restriction first and its HTTP method second, as Triton does.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

from tritium import (
    Completion,
    DataType,
    InferenceRequest,
    InferenceResponse,
    InferenceService,
    StatusCode,
    TritiumError,
)
from tritium_frontend_http import _compression as compression
from tritium_frontend_http import _jsonio as js
from tritium_frontend_http._errors import HttpError, error_body, http_status, invalid, malformed
from tritium_frontend_http._generate import decode_generate, encode_generate, input_metadata
from tritium_frontend_http._inference import (
    OutputPlan,
    RawInputSpec,
    decode_raw_request,
    decode_request,
    encode_response,
    forward_headers,
)
from tritium_frontend_http._settings import HttpSettings

logger = logging.getLogger("tritium.frontend.http")

SERVER_RE = re.compile(r"/v2(?:/health/(live|ready))?")
MODEL_RE = re.compile(
    r"/v2/models/([^/]+)(?:/versions/([0-9]+))?(?:/(infer|generate|generate_stream|ready|config|stats|trace/setting))?"
)
REPOSITORY_RE = re.compile(r"/v2/repository(?:/([^/]+))?/(index|models/([^/]+)/(load|unload))")
SYSTEM_SHM_RE = re.compile(r"/v2/systemsharedmemory(?:/region/([^/]+))?/(status|register|unregister)")
CUDA_SHM_RE = re.compile(r"/v2/cudasharedmemory(?:/region/([^/]+))?/(status|register|unregister)")
TRACE_RE = re.compile(r"/v2/trace/setting")

JSON_TYPE = "application/json"
HEADER_LENGTH = "Inference-Header-Content-Length"
_ROUTE_CACHE_SIZE = 4096
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
_UINT32_MAX = (1 << 32) - 1
_STOI = re.compile(r"\s*([+-]?\d+)")

Handler = Callable[..., Awaitable[web.StreamResponse]]
Answer = tuple[int, dict[str, str], bytes]
"""A response as the fast path writes it: status, headers (without Content-Length), body."""


class StartedAnswer:
    """An inference the data plane started at once: its answer is made when its completion is settled (a
    listener of the completion calls :meth:`answer`), with no task in between."""

    __slots__ = ("_accept", "_app", "_plan", "completion")

    def __init__(self, completion: Completion[InferenceResponse], app: HttpApp, plan: OutputPlan,
                 accept: str | None) -> None:
        self.completion = completion
        self._app = app
        self._plan = plan
        self._accept = accept

    def answer(self) -> Answer | Awaitable[Answer]:
        """The answer of the settled (not cancelled) completion: awaitable only when it is to be compressed.
        Errors become their answers, as :meth:`HttpApp.infer_eager` answers them."""
        app = self._app
        try:
            return app._answer_now(self.completion.result(), self._plan, self._accept)
        except Exception as exc:
            return app._error_answer(exc, "POST", "/infer")


def stoi(text: str, low: int = _INT32_MIN, high: int = _INT32_MAX) -> int:
    """C++ ``std::stoi``: leading spaces and a sign, then digits (trailing text ignored). Raises ValueError
    when no digits lead, OverflowError when out of range."""
    match = _STOI.match(text)
    if match is None:
        raise ValueError(text)
    value = int(match.group(1))
    if not low <= value <= high:
        raise OverflowError(text)
    return value


def json_response(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=js.dumps(payload), status=status, content_type=JSON_TYPE)


def error_response(status: int, message: str) -> web.Response:
    return web.Response(body=error_body(message), status=status, content_type=JSON_TYPE)


class HttpApp:
    """Serves Triton's HTTP/REST API over one :class:`tritium.InferenceService`."""

    def __init__(self, service: InferenceService, settings: HttpSettings) -> None:
        self.service = service
        self.settings = settings
        self._routes: dict[str, tuple[Handler, tuple[str, ...]]] = {}
        self._raw_specs: dict[tuple[str, str], RawInputSpec] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._restricted_inference = settings.restricted.get("inference")
        self._infer = self.infer

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # ---------------------------------------------------------------------------------------- routing
    def _route(self, path: str) -> tuple[Handler, tuple[str, ...]]:
        if path == "/v2/models/stats":
            return self.model_stats, ("", "")
        if path == "/v2/logging":
            return self.logging, ()
        match = MODEL_RE.fullmatch(path)
        if match is not None:
            model, version, kind = match.group(1), match.group(2) or "", match.group(3) or ""
            handler = {
                "ready": self.model_ready,
                "infer": self.infer,
                "generate": self.generate,
                "generate_stream": self.generate_stream,
                "config": self.model_config,
                "stats": self.model_stats,
                "": self.model_metadata,
            }.get(kind)
            if handler is not None:
                return handler, (model, version)
            if kind == "trace/setting" and not version:
                return self.trace, (model,)
        if path == "/v2":
            return self.server_metadata, ()
        match = SERVER_RE.fullmatch(path)
        if match is not None:
            return self.health, (match.group(1),)
        match = SYSTEM_SHM_RE.fullmatch(path)
        if match is not None:
            return self.system_shm, (match.group(1) or "", match.group(2))
        match = CUDA_SHM_RE.fullmatch(path)
        if match is not None:
            return self.cuda_shm, (match.group(1) or "", match.group(2))
        match = REPOSITORY_RE.fullmatch(path)
        if match is not None:
            repository = match.group(1) or ""
            if match.group(2) == "index":
                return self.repository_index, (repository,)
            return self.repository_control, (repository, match.group(3), match.group(4))
        if TRACE_RE.fullmatch(path):
            return self.trace, ("",)
        return self.not_found, ()

    def _cached_route(self, path: str) -> tuple[Any, tuple[Any, ...]]:
        """The handler and arguments for ``path``, from a bounded cache of resolved paths."""
        route = self._routes.get(path)
        if route is None:
            route = self._route(path)
            if len(self._routes) >= _ROUTE_CACHE_SIZE:
                self._routes.clear()
            self._routes[path] = route
        return route

    def infer_target(self, path: str) -> tuple[str, str] | None:
        """(model, version) when ``path`` is an ``/infer`` endpoint, else None."""
        handler, args = self._cached_route(path)
        if handler == self._infer:
            return args  # type: ignore[return-value]
        return None

    async def handle(self, request: BaseRequest) -> web.StreamResponse:
        """The aiohttp low-level handler: route, run, and turn errors into Triton's error bodies."""
        handler, args = self._cached_route(request.path)
        try:
            return await handler(request, *args)
        except TritiumError as exc:
            return error_response(http_status(exc.code), exc.message)
        except HttpError as exc:
            return error_response(exc.status, exc.message)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:  # never crash the connection on a bug: answer 500 and log it
            logger.exception("unexpected error serving %s %s", request.method, request.path)
            return error_response(500, f"internal error: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------------------------- utilities
    def _restrict(self, request: BaseRequest, category: str) -> None:
        restriction = self.settings.restricted.get(category)
        if restriction is not None:
            header, value = restriction
            if request.headers.get(header) != value:
                raise HttpError(403, f"This API is restricted, expecting header '{header}'")

    @staticmethod
    def _method(request: BaseRequest, *allowed: str) -> None:
        if request.method not in allowed:
            raise HttpError(405, "Method Not Allowed")

    async def _offload(self, func: Callable[..., bytes], *args: Any) -> bytes:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=max(1, self.settings.thread_count), thread_name_prefix="tritium-http"
            )
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def _read_raw(self, request: BaseRequest, too_large: Callable[[int], str]) -> bytes:
        """The request body as sent, refused past ``--http-max-input-size`` without reading it all."""
        limit = self.settings.max_input_size
        length = request.content_length
        if length is not None and length > limit:
            raise invalid(too_large(length))
        content = request.content
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = await content.readany()
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise invalid(too_large(total))
            chunks.append(chunk)
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    async def _read_body(self, request: BaseRequest, too_large: Callable[[int], str]) -> bytes:
        """The request body, decompressed per ``Content-Encoding`` within the same limit."""
        encoding = compression.request_encoding(request.headers.get("Content-Encoding"))
        if encoding is None:
            raise TritiumError(StatusCode.UNSUPPORTED, "Unsupported compression type")
        body = await self._read_raw(request, too_large)
        if encoding == compression.IDENTITY:
            return body
        limit = self.settings.max_input_size
        if len(body) >= compression.OFFLOAD_BYTES:
            return await self._offload(compression.decompress, body, limit)
        return compression.decompress(body, limit)

    def _json_too_large(self, size: int) -> str:
        return (
            f"request JSON size of {size} bytes exceeds the maximum allowed input size of "
            f"{self.settings.max_input_size} bytes. Use --http-max-input-size to increase the limit."
        )

    async def _read_json(self, request: BaseRequest, parse_empty: bool) -> tuple[Any, int]:
        """The parsed body and its length. Triton's ``EVRequestToJson`` skips an empty body
        (``parse_empty`` False); its ``EVRequestToJsonAllowsEmpty`` parses it, and so fails on it."""
        body = await self._read_raw(request, self._json_too_large)
        if not body and not parse_empty:
            return None, 0
        return js.parse(body), len(body)

    # ------------------------------------------------------------------------------------ endpoints
    async def not_found(self, request: BaseRequest) -> web.StreamResponse:
        return error_response(404, "Not Found")

    async def health(self, request: BaseRequest, kind: str) -> web.StreamResponse:
        self._restrict(request, "health")
        self._method(request, "GET")
        if self.service.stopping:
            raise TritiumError(StatusCode.UNAVAILABLE, "Server exiting")
        ok = self.service.server_ready() if kind == "ready" else self.service.server_live()
        return web.Response(status=200 if ok else 400)

    async def server_metadata(self, request: BaseRequest) -> web.StreamResponse:
        self._restrict(request, "metadata")
        self._method(request, "GET")
        return json_response(self.service.server_metadata())

    async def model_ready(self, request: BaseRequest, model: str, version: str) -> web.StreamResponse:
        self._restrict(request, "health")
        self._method(request, "GET")
        if not self.service.model_ready(model, version):
            return error_response(400, "Model version not ready")
        return web.Response(status=200)

    async def model_metadata(self, request: BaseRequest, model: str, version: str) -> web.StreamResponse:
        self._restrict(request, "metadata")
        self._method(request, "GET")
        return json_response(self.service.model_metadata(model, version))

    async def model_config(self, request: BaseRequest, model: str, version: str) -> web.StreamResponse:
        self._restrict(request, "model-config")
        self._method(request, "GET")
        from tritium.config import model_config_to_json

        return json_response(model_config_to_json(self.service.model_config(model, version)))

    async def model_stats(self, request: BaseRequest, model: str, version: str) -> web.StreamResponse:
        self._restrict(request, "statistics")
        self._method(request, "GET")
        return json_response(self.service.statistics(model, version))

    # ---------------------------------------------------------------------------------------- infer
    def _raw_spec(self, model: str, version: str) -> RawInputSpec:
        config = self.service.model_config(model, version)
        inputs = []
        for item in config.input:
            try:
                datatype = DataType.from_config_enum(int(item.data_type))
            except ValueError:
                raise invalid(f"invalid datatype for input {item.name}") from None
            inputs.append((item.name, datatype, tuple(int(d) for d in item.dims)))
        return RawInputSpec(tuple(inputs), int(config.max_batch_size))

    def _header_length(self, value: str | None, content_length: int) -> int:
        if value is None:
            return content_length
        if value.isascii() and value.isdigit() and len(value) < 10:  # the usual plain number: stoi's answer
            length = int(value)
        else:
            try:
                length = stoi(value)
            except ValueError:
                raise invalid(f"Unable to parse {HEADER_LENGTH}, got: {value}") from None
            except OverflowError:
                raise invalid(
                    f"Unable to parse {HEADER_LENGTH}, value is out of range [ {_INT32_MIN}, {_INT32_MAX} ], "
                    f"got: {value}"
                ) from None
        if length < 0 or length > content_length:
            raise invalid(f"inference header size should be in range (0, {content_length}), got: {value}")
        return length

    def _infer_checks(self, headers: Any, method: str, model: str, version: str) -> None:
        """What ``/infer`` checks before reading the body, in Triton's order."""
        restriction = self._restricted_inference
        if restriction is not None and headers.get(restriction[0]) != restriction[1]:
            raise HttpError(403, f"This API is restricted, expecting header '{restriction[0]}'")
        if method != "POST":
            raise HttpError(405, "Method Not Allowed")
        if self.service.is_decoupled(model, version):
            raise TritiumError.unsupported("HTTP end point doesn't support models with decoupled transaction policy")

    def _infer_request(
        self, headers: Any, raw_headers: Any, body: bytes, model: str, version: str
    ) -> tuple[InferenceRequest, OutputPlan]:
        """The kernel request (and how to answer it) from a whole ``/infer`` body."""
        header_length = self._header_length(headers.get(HEADER_LENGTH), len(body))
        limit = self.settings.max_input_size
        if header_length == 0:
            spec = self._raw_specs.get((model, version))
            if spec is None:
                spec = self._raw_spec(model, version)
                self._raw_specs[(model, version)] = spec
            infer_request, plan = decode_raw_request(body, model, version, spec, max_input_size=limit)
        else:
            infer_request, plan = decode_request(
                body, header_length, model, version, max_input_size=limit, shm=self.service.shared_memory
            )
        pattern = self.settings.header_forward
        if pattern is not None:
            raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers]
            forward_headers(infer_request, raw, pattern)
        return infer_request, plan

    def _infer_answer(
        self, response: InferenceResponse, plan: OutputPlan, accept: str | None
    ) -> tuple[dict[str, str], bytes, str | None]:
        """Response headers and body, and the content coding still to apply (None: nothing to do)."""
        payload, json_length = encode_response(response, plan, self.service.shared_memory)
        if json_length is None:
            out_headers = {"Content-Type": JSON_TYPE}
        else:
            out_headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(json_length)}
        if accept:
            encoding = compression.response_encoding(accept)
            if encoding != compression.IDENTITY:
                out_headers["Content-Encoding"] = encoding
                if len(payload) >= compression.OFFLOAD_BYTES:
                    return out_headers, payload, encoding
                payload = compression.compress(payload, encoding)
        return out_headers, payload, None

    async def _compressed(self, answer: tuple[dict[str, str], bytes, str | None]) -> tuple[dict[str, str], bytes]:
        out_headers, payload, encoding = answer
        if encoding is not None:
            payload = await self._offload(compression.compress, payload, encoding)
        return out_headers, payload

    async def infer(self, request: BaseRequest, model: str, version: str) -> web.StreamResponse:
        headers = request.headers
        self._infer_checks(headers, request.method, model, version)
        content = request.content
        length = request.content_length
        if (
            length is not None
            and length <= self.settings.max_input_size
            and content.is_eof()
            and headers.get("Content-Encoding") is None
        ):
            body = content.read_nowait()  # the whole body arrived with the headers: no awaiting
        else:
            header_value = headers.get(HEADER_LENGTH)
            if header_value is None:
                too_large = self._json_too_large
            elif header_value.strip() == "0":
                too_large = self._raw_too_large
            else:
                too_large = self._body_too_large
            body = await self._read_body(request, too_large)
        infer_request, plan = self._infer_request(headers, request.raw_headers, body, model, version)
        response = await self.service.infer(infer_request)
        out_headers, payload = await self._compressed(
            self._infer_answer(response, plan, headers.get("Accept-Encoding"))
        )
        return web.Response(body=payload, headers=out_headers)

    def infer_eager(
        self, headers: Any, raw_headers: Any, method: str, body: bytes, model: str, version: str
    ) -> Answer | StartedAnswer | Awaitable[Answer]:
        """``/infer`` for a request whose whole (identity-coded) body has arrived, answered on the spot when
        the data plane answers synchronously (:meth:`tritium.InferenceService.infer_nowait`); a
        :class:`StartedAnswer` when it started the request at once (a :class:`tritium.Completion`); otherwise
        an awaitable of the answer. Errors become their answers, exactly as :meth:`handle` answers them."""
        try:
            self._infer_checks(headers, method, model, version)
            infer_request, plan = self._infer_request(headers, raw_headers, body, model, version)
            result = self.service.infer_nowait(infer_request)
            if type(result) is not InferenceResponse:
                if type(result) is Completion:
                    return StartedAnswer(result, self, plan, headers.get("Accept-Encoding"))
                return self._infer_later(result, plan, headers)  # type: ignore[arg-type]
            return self._answer_now(result, plan, headers.get("Accept-Encoding"))
        except Exception as exc:
            return self._error_answer(exc, method, f"/v2/models/{model}/infer")

    async def _infer_later(self, pending: Awaitable[InferenceResponse], plan: OutputPlan, headers: Any) -> Answer:
        try:
            response = await pending
            out_headers, payload = await self._compressed(
                self._infer_answer(response, plan, headers.get("Accept-Encoding"))
            )
        except Exception as exc:
            return self._error_answer(exc, "POST", "/infer")
        return 200, out_headers, payload

    def _answer_now(
        self, response: InferenceResponse, plan: OutputPlan, accept: str | None
    ) -> Answer | Awaitable[Answer]:
        """The answer of a response: at once, or awaitable when it is to be compressed (off the loop)."""
        encoded = self._infer_answer(response, plan, accept)
        if encoded[2] is not None:
            return self._answer_later(encoded)
        return 200, encoded[0], encoded[1]

    async def _answer_later(self, answer: tuple[dict[str, str], bytes, str | None]) -> Answer:
        try:
            out_headers, payload = await self._compressed(answer)
        except Exception as exc:
            return self._error_answer(exc, "POST", "/infer")
        return 200, out_headers, payload

    @staticmethod
    def _error_answer(exc: Exception, method: str, path: str) -> Answer:
        """The answer :meth:`handle` gives for an exception."""
        if isinstance(exc, TritiumError):
            status, message = http_status(exc.code), exc.message
        elif isinstance(exc, HttpError):
            status, message = exc.status, exc.message
        else:
            logger.error("unexpected error serving %s %s", method, path, exc_info=exc)
            status, message = 500, f"internal error: {type(exc).__name__}: {exc}"
        return status, {"Content-Type": JSON_TYPE}, error_body(message)

    def _raw_too_large(self, size: int) -> str:
        return (
            f"Raw input has a byte_size ({size} bytes) that exceeds the maximum allowed value of "
            f"{self.settings.max_input_size} bytes. Use --http-max-input-size to increase the limit."
        )

    def _body_too_large(self, size: int) -> str:
        return (
            f"request body size of {size} bytes exceeds the maximum allowed input size of "
            f"{self.settings.max_input_size} bytes. Use --http-max-input-size to increase the limit."
        )

    # ------------------------------------------------------------------------------------- generate
    async def _generate_request(self, request: BaseRequest, model: str, version: str) -> Any:
        self._restrict(request, "inference")
        self._method(request, "POST")
        inputs = input_metadata(self.service.model_metadata(model, version))
        if compression.request_encoding(request.headers.get("Content-Encoding")) != compression.IDENTITY:
            raise invalid("Unsupported content-encoding, only 'identity' is supported.")
        body = await self._read_raw(request, self._json_too_large)
        doc = js.parse(body)
        return decode_generate(doc, model, version, inputs, self.settings.max_input_size)

    async def generate(self, request: BaseRequest, model: str, version: str) -> web.StreamResponse:
        infer_request = await self._generate_request(request, model, version)
        responses = []
        stream = self.service.infer_stream(infer_request)
        try:
            async for item in stream:
                responses.append(item)
        finally:
            await _aclose(stream)
        if len(responses) != 1:
            raise malformed(
                "generate expects model to produce exactly 1 response, use generate stream for model that "
                "generates various number of responses"
            )
        return web.Response(body=encode_generate(responses[0]), content_type=JSON_TYPE)

    async def generate_stream(self, request: BaseRequest, model: str, version: str) -> web.StreamResponse:
        infer_request = await self._generate_request(request, model, version)
        stream = self.service.infer_stream(infer_request)
        try:
            iterator = stream.__aiter__()
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                first = None
            response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream; charset=utf-8"})
            await response.prepare(request)
            item = first
            while item is not None:
                await response.write(b"data: " + encode_generate(item) + b"\n\n")
                try:
                    item = await iterator.__anext__()
                except StopAsyncIteration:
                    item = None
                except TritiumError as exc:
                    await response.write(b"data: " + error_body(exc.message) + b"\n\n")
                    item = None
            await response.write_eof()
            return response
        finally:
            await _aclose(stream)

    # -------------------------------------------------------------------------- repository control
    async def repository_index(self, request: BaseRequest, repository: str) -> web.StreamResponse:
        self._restrict(request, "model-repository")
        self._method(request, "POST")
        doc, length = await self._read_json(request, parse_empty=False)
        ready = False
        if length > 0 and type(doc) is dict and "ready" in doc:
            if type(doc["ready"]) is not bool:
                raise invalid("Invalid value for 'ready': expected a boolean")
            ready = doc["ready"]
        return json_response(self.service.repository_index(repository, ready))

    async def repository_control(
        self, request: BaseRequest, repository: str, model: str, action: str
    ) -> web.StreamResponse:
        self._restrict(request, "model-repository")
        self._method(request, "POST")
        if repository:
            raise TritiumError.unsupported("'repository_name' specification is not supported")
        doc, length = await self._read_json(request, parse_empty=False)
        params: dict[str, Any] = {}
        if length > 0 and type(doc) is dict and "parameters" in doc:
            params = doc["parameters"]
            if type(params) is not dict:
                raise malformed(js.NOT_MEMBERS)
        if action == "load":
            config: str | None = None
            files: dict[str, bytes] = {}
            for key, value in params.items():
                text = js.as_str(value)
                if key == "config":
                    config = text
                elif key.startswith("file:"):
                    try:
                        files[key[5:]] = base64.b64decode(text)
                    except (binascii.Error, ValueError):
                        raise invalid(f"failed to decode base64 content of '{key}'") from None
                else:
                    raise malformed("unexpected error on creating Triton parameter")
            await self.service.load_model(model, config=config, files=files or None)
        else:
            unload_dependents = False
            if "unload_dependents" in params:
                try:
                    unload_dependents = js.as_bool(params["unload_dependents"])
                except TritiumError as exc:
                    raise malformed(f"Unable to parse 'unload_dependents': {exc.message}") from None
            await self.service.unload_model(model, unload_dependents=unload_dependents)
        return web.Response(status=200, content_type=JSON_TYPE)

    # ------------------------------------------------------------------------------ logging / trace
    async def logging(self, request: BaseRequest) -> web.StreamResponse:
        self._restrict(request, "logging")
        self._method(request, "GET", "POST")
        if request.method == "POST":
            doc, _ = await self._read_json(request, parse_empty=True)
            update: dict[str, Any] = {}
            if type(doc) is dict:
                if doc.get("log_file") is not None:
                    raise TritiumError.unsupported("log file location can not be updated through network protocol")
                for key in ("log_info", "log_warning", "log_error"):
                    if doc.get(key) is not None:
                        update[key] = js.as_bool(doc[key])
                if doc.get("log_verbose_level") is not None:
                    update["log_verbose_level"] = js.as_uint(doc["log_verbose_level"])
                if doc.get("log_format") is not None:
                    log_format = js.as_str(doc["log_format"])
                    if log_format not in ("default", "ISO8601"):
                        raise TritiumError.unavailable(f"invalid argument for --log_format, got: {log_format}")
                    update["log_format"] = log_format
            settings = self.service.update_log_settings(update) if update else self.service.log_settings()
        else:
            settings = self.service.log_settings()
        return json_response(settings)

    async def trace(self, request: BaseRequest, model: str) -> web.StreamResponse:
        self._restrict(request, "trace")
        self._method(request, "GET", "POST")
        if model and not self.service.model_ready(model, ""):
            raise invalid(f"Request for unknown model : {model}")
        if request.method == "POST":
            doc, _ = await self._read_json(request, parse_empty=True)
            update = _trace_update(doc)
            settings = self.service.update_trace_settings(update, model)
        else:
            settings = self.service.trace_settings(model)
        return json_response(settings)

    # ---------------------------------------------------------------------------------- shared memory
    async def system_shm(self, request: BaseRequest, region: str, action: str) -> web.StreamResponse:
        self._restrict(request, "shared-memory")
        self._method(request, "GET" if action == "status" else "POST")
        registry = self.service.shared_memory
        if action == "status":
            if not registry.allowed:
                if region:
                    raise TritiumError.not_found(f"Unable to find system shared memory region: '{region}'")
                return json_response([])
            return json_response(registry.status(region or None))
        if not registry.allowed:
            raise TritiumError.unsupported(_shm_disabled())
        if action == "register":
            if not region:
                raise invalid("'region name' is necessary to register system shared memory region")
            doc, _ = await self._read_json(request, parse_empty=True)
            if type(doc) is not dict or "key" not in doc:
                raise invalid("Shared memory register request has no 'key' field")
            key = js.as_str(doc["key"])
            offset = js.as_uint(doc["offset"]) if "offset" in doc else 0
            if "byte_size" not in doc:
                raise invalid("Shared memory register request has no 'byte_size' field")
            byte_size = js.as_uint(doc["byte_size"])
            registry.register(region, key, offset, byte_size)
        else:
            registry.unregister(region or None)
        return web.Response(status=200, content_type=JSON_TYPE)

    async def cuda_shm(self, request: BaseRequest, region: str, action: str) -> web.StreamResponse:
        """CUDA shared memory answered as Triton built without GPU support answers it."""
        self._restrict(request, "shared-memory")
        self._method(request, "GET" if action == "status" else "POST")
        registry = self.service.shared_memory
        if action == "status":
            if region:
                if registry.allowed and any(r["name"] == region for r in registry.status(None)):
                    raise TritiumError.not_found(
                        f"The region named '{region}' is registered as system shared memory, not CUDA shared memory"
                    )
                raise TritiumError.not_found(f"Unable to find cuda shared memory region: '{region}'")
            return json_response([])
        if not registry.allowed:
            raise TritiumError.unsupported(_shm_disabled())
        if action == "register":
            if not region:
                raise invalid("'region name' is necessary to register cuda shared memory region")
            raise invalid(f"failed to register CUDA shared memory region: '{region}', GPUs not supported")
        return web.Response(status=200, content_type=JSON_TYPE)


def _shm_disabled() -> str:
    return "Client shared memory is disabled. Start the server with '--allow-client-shm=true' to enable."


async def _aclose(stream: Any) -> None:
    closer = getattr(stream, "aclose", None)
    if closer is not None:
        try:
            await closer()
        except Exception:  # closing a finished or failed stream must not mask the answer
            logger.debug("closing an inference stream failed", exc_info=True)


def _trace_int(doc: dict[str, Any], key: str, low: int, high: int) -> str:
    text = js.as_str(doc[key])
    try:
        value = stoi(text, -(1 << 63), (1 << 63))
    except ValueError:
        raise invalid(f"Unable to parse '{key}', got: {text}") from None
    if not low <= value <= high:
        raise invalid(f"Unable to parse '{key}', value is out of range [ {low}, {high} ], got: {text}")
    return str(value)


def _trace_update(doc: Any) -> dict[str, Any]:
    """Validate a trace settings update as Triton's ``HandleTrace`` does; None values clear a key."""
    update: dict[str, Any] = {}
    if type(doc) is not dict:
        return update
    if "trace_file" in doc:
        raise TritiumError.unsupported("trace file location can not be updated through network protocol")
    if "trace_level" in doc:
        value = doc["trace_level"]
        if value is None:
            update["trace_level"] = None
        else:
            levels = js.as_list(value)
            names = [js.as_str(level) for level in levels]
            if "OFF" in names and len(names) != 1:
                raise invalid("Expect only one trace level 'OFF' is specified")
            chosen = [name for name in ("TIMESTAMPS", "TENSORS") if name in names]
            if names == ["OFF"]:
                update["trace_level"] = ["OFF"]
            elif chosen:
                update["trace_level"] = chosen
    if "trace_rate" in doc:
        update["trace_rate"] = None if doc["trace_rate"] is None else _trace_int(doc, "trace_rate", 0, _UINT32_MAX)
    if "trace_count" in doc:
        if doc["trace_count"] is None:
            update["trace_count"] = None
        else:
            text = js.as_str(doc["trace_count"])
            try:
                count = stoi(text)
            except ValueError:
                raise invalid(f"Unable to parse 'trace_count', got: {text}") from None
            except OverflowError:
                raise invalid(
                    f"Unable to parse 'trace_count', value is out of range [ -1, {_INT32_MAX} ], got: {text}"
                ) from None
            if count < -1:
                raise invalid(f"Unable to parse 'trace_count'. Expecting value >= -1, got:{text}")
            update["trace_count"] = str(count)
    if "log_frequency" in doc:
        update["log_frequency"] = (
            None if doc["log_frequency"] is None else _trace_int(doc, "log_frequency", 0, _UINT32_MAX)
        )
    return update
