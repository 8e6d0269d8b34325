"""The RPCs of ``inference.GRPCInferenceService`` and ``grpc.health.v1.Health``, on grpc.aio.

Every RPC goes through the protocol-neutral :class:`tritium.InferenceService`; this module only converts
messages and maps errors. Handlers are registered as grpc.aio generic method handlers with the messages'
own ``FromString``/``SerializeToString``, so no generated ``*_pb2_grpc`` servicer (and no default-pool
descriptor) is needed. A restricted category (--grpc-restricted-protocol) wraps its handlers in a metadata
check; unrestricted handlers pay nothing for the feature.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from tritium import Completion, InferenceResponse, InferenceService, ServiceCapability, StatusCode, TritiumError
from tritium_frontend_grpc import _control
from tritium_frontend_grpc._codec import request_from_proto, response_to_proto
from tritium_frontend_grpc._errors import as_tritium_error, grpc_status
from tritium_frontend_grpc._options import INT32_MAX, GrpcSettings, Restriction
from tritium_frontend_grpc._params import forwarded_headers
from tritium_frontend_grpc._wire import InferCall, Malformed, parse_infer_request, tolerant_deserializer
from tritium_frontend_grpc.proto import grpc_service_pb2 as pb

SERVICE_NAME = "inference.GRPCInferenceService"
HEALTH_SERVICE_NAME = "grpc.health.v1.Health"
DECOUPLED_MESSAGE = "ModelInfer RPC doesn't support models with decoupled transaction policy"
SHUTTING_DOWN_MESSAGE = "GRPC server is shutting down and has stopped accepting new requests."
SHM_DISABLED_MESSAGE = (
    "Client shared memory is disabled. Start the server with '--allow-client-shm=true' to enable."
)
_COMPRESSION = {"low": grpc.Compression.Gzip, "medium": grpc.Compression.Deflate, "high": grpc.Compression.Deflate}

# RPC -> (restricted protocol category, request class, response class)
_RPCS: dict[str, tuple[str, Any, Any]] = {
    "ServerLive": ("health", pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": ("health", pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": ("health", pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ServerMetadata": ("metadata", pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelMetadata": ("metadata", pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": ("inference", pb.ModelInferRequest, pb.ModelInferResponse),
    "ModelStreamInfer": ("inference", pb.ModelInferRequest, pb.ModelStreamInferResponse),
    "ModelConfig": ("model-config", pb.ModelConfigRequest, pb.ModelConfigResponse),
    "ModelStatistics": ("statistics", pb.ModelStatisticsRequest, pb.ModelStatisticsResponse),
    "RepositoryIndex": ("model-repository", pb.RepositoryIndexRequest, pb.RepositoryIndexResponse),
    "RepositoryModelLoad": ("model-repository", pb.RepositoryModelLoadRequest, pb.RepositoryModelLoadResponse),
    "RepositoryModelUnload": (
        "model-repository",
        pb.RepositoryModelUnloadRequest,
        pb.RepositoryModelUnloadResponse,
    ),
    "SystemSharedMemoryStatus": (
        "shared-memory",
        pb.SystemSharedMemoryStatusRequest,
        pb.SystemSharedMemoryStatusResponse,
    ),
    "SystemSharedMemoryRegister": (
        "shared-memory",
        pb.SystemSharedMemoryRegisterRequest,
        pb.SystemSharedMemoryRegisterResponse,
    ),
    "SystemSharedMemoryUnregister": (
        "shared-memory",
        pb.SystemSharedMemoryUnregisterRequest,
        pb.SystemSharedMemoryUnregisterResponse,
    ),
    "CudaSharedMemoryStatus": ("shared-memory", pb.CudaSharedMemoryStatusRequest, pb.CudaSharedMemoryStatusResponse),
    "CudaSharedMemoryRegister": (
        "shared-memory",
        pb.CudaSharedMemoryRegisterRequest,
        pb.CudaSharedMemoryRegisterResponse,
    ),
    "CudaSharedMemoryUnregister": (
        "shared-memory",
        pb.CudaSharedMemoryUnregisterRequest,
        pb.CudaSharedMemoryUnregisterResponse,
    ),
    "TraceSetting": ("trace", pb.TraceSettingRequest, pb.TraceSettingResponse),
    "LogSettings": ("logging", pb.LogSettingsRequest, pb.LogSettingsResponse),
}

_NO_REQUEST = pb.ModelInferRequest()
"""Stands in for the message of a stream request that could not be parsed (its error carries no id)."""


async def _abort(context: grpc.aio.ServicerContext, error: TritiumError) -> None:
    await context.abort(grpc_status(error), error.message)


def _fail(context: grpc.aio.ServicerContext, error: TritiumError) -> pb.ModelInferResponse:
    """Answer a unary call with ``error``'s status, without ``context.abort``.

    ``abort`` raises, and that exception's traceback holds the handler's frames and so the request, in a
    reference cycle: measured, each aborted 48 MB ModelInfer kept about 50 MB of RSS until a later garbage
    collection. Setting the status and returning keeps memory flat."""
    context.set_code(grpc_status(error))
    context.set_details(error.message)
    return _EMPTY_RESPONSE


_EMPTY_RESPONSE = pb.ModelInferResponse()


def _rejecting_malformed(method: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """``method``, answering INVALID_ARGUMENT for a request body that is not its message."""

    async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if type(request) is Malformed:
            await _abort(context, TritiumError.invalid_arg(request.message))
        return await method(request, context)

    return checked


class GrpcServicer:
    """Implements every RPC against one :class:`tritium.InferenceService`."""

    def __init__(self, service: InferenceService, settings: GrpcSettings) -> None:
        self._service = service
        self._settings = settings
        self._shm = self._shared_memory(service)
        self._forward = settings.header_forward_pattern
        self._compression = _COMPRESSION.get(settings.compression_level)
        self._pool_size = settings.max_response_pool_size if settings.max_response_pool_size < INT32_MAX else 0
        self._readers: set[asyncio.Task[None]] = set()
        self._infer_restriction = settings.restrictions.get("inference")
        self.accepting = True

    @staticmethod
    def _shared_memory(service: InferenceService) -> Any:
        if not service.supports(ServiceCapability.SYSTEM_SHARED_MEMORY):
            return None
        return service.shared_memory

    # ------------------------------------------------------------------------------- registration
    def generic_handlers(self) -> tuple[grpc.GenericRpcHandler, ...]:
        """The generic handlers of the inference service and the health service."""
        handlers: dict[str, grpc.RpcMethodHandler] = {}
        for rpc, (category, request_cls, response_cls) in _RPCS.items():
            method = getattr(self, rpc)
            restriction = self._settings.restrictions.get(category)
            if rpc == "ModelStreamInfer":
                if restriction is not None:
                    method = _restricted_stream(method, restriction)
                handlers[rpc] = grpc.stream_stream_rpc_method_handler(
                    method,
                    request_deserializer=parse_infer_request,
                    response_serializer=response_cls.SerializeToString,
                )
            else:
                if rpc == "ModelInfer":
                    deserializer = parse_infer_request  # ModelInfer answers Malformed and restrictions itself
                else:
                    deserializer = tolerant_deserializer(request_cls)
                    method = _rejecting_malformed(method)
                    if restriction is not None:
                        method = _restricted_unary(method, restriction)
                handlers[rpc] = grpc.unary_unary_rpc_method_handler(
                    method,
                    request_deserializer=deserializer,
                    response_serializer=response_cls.SerializeToString,
                )
        check: Callable[..., Awaitable[Any]] = self.HealthCheck
        health_restriction = self._settings.restrictions.get("health")
        if health_restriction is not None:
            check = _restricted_unary(check, health_restriction)
        health = {
            "Check": grpc.unary_unary_rpc_method_handler(
                _rejecting_malformed(check),
                request_deserializer=tolerant_deserializer(health_pb2.HealthCheckRequest),
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
            )
        }
        return (
            grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),
            grpc.method_handlers_generic_handler(HEALTH_SERVICE_NAME, health),
        )

    def stop_streams(self) -> None:
        """Ask every open stream to finish once its requests in flight are answered."""
        self.accepting = False
        for reader in list(self._readers):
            reader.cancel()

    # ------------------------------------------------------------------------------------- health
    def _exiting(self) -> TritiumError | None:
        return TritiumError.unavailable("Server exiting") if self._service.stopping else None

    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> pb.ServerLiveResponse:
        error = self._exiting()
        if error is not None:
            await _abort(context, error)
        return pb.ServerLiveResponse(live=self._service.server_live())

    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> pb.ServerReadyResponse:
        error = self._exiting()
        if error is not None:
            await _abort(context, error)
        return pb.ServerReadyResponse(ready=self._service.server_ready())

    async def HealthCheck(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """``grpc.health.v1.Health/Check``: SERVING when the server is ready (as Triton answers)."""
        error = self._exiting()
        if error is not None:
            await _abort(context, error)
        status = health_pb2.HealthCheckResponse.SERVING
        if not self._service.server_ready():
            status = health_pb2.HealthCheckResponse.NOT_SERVING
        return health_pb2.HealthCheckResponse(status=status)

    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._call(context, lambda: pb.ModelReadyResponse(
            ready=self._service.model_ready(request.name, _checked_version(request.version))
        ))

    # ----------------------------------------------------------------------------------- metadata
    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._call(context, lambda: _control.server_metadata(self._service.server_metadata()))

    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._call(
            context, lambda: _control.model_metadata(self._service.model_metadata(request.name, request.version))
        )

    async def ModelConfig(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._call(
            context, lambda: _control.model_config(self._service.model_config(request.name, request.version))
        )

    async def ModelStatistics(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._call(
            context, lambda: _control.statistics(self._service.statistics(request.name, request.version))
        )

    # --------------------------------------------------------------------------------- repository
    async def RepositoryIndex(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        def run() -> Any:
            _no_repository_name(request.repository_name)
            return _control.repository_index(self._service.repository_index("", request.ready))

        return await self._call(context, run)

    async def RepositoryModelLoad(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            _no_repository_name(request.repository_name)
            config, files = _control.load_parameters(request.parameters)
            await self._service.load_model(request.model_name, config=config, files=files)
        except Exception as exc:
            await _abort(context, as_tritium_error(exc))
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            _no_repository_name(request.repository_name)
            dependents = _control.unload_dependents(request.parameters)
            await self._service.unload_model(request.model_name, unload_dependents=dependents)
        except Exception as exc:
            await _abort(context, as_tritium_error(exc))
        return pb.RepositoryModelUnloadResponse()

    # ------------------------------------------------------------------------------ shared memory
    def _shm_enabled(self) -> Any:
        if self._shm is None or not self._shm.allowed:
            raise TritiumError(StatusCode.UNSUPPORTED, SHM_DISABLED_MESSAGE)
        return self._shm

    def _system_regions(self, name: str) -> list[dict[str, Any]]:
        if self._shm is None or not self._shm.allowed:  # nothing can be registered: Triton lists none
            if name:
                raise TritiumError.not_found(f"Unable to find system shared memory region: '{name}'")
            return []
        regions: list[dict[str, Any]] = self._shm.status(name or None)
        return regions

    async def SystemSharedMemoryStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._call(context, lambda: _control.system_shm_status(self._system_regions(request.name)))

    async def SystemSharedMemoryRegister(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        def run() -> Any:
            self._shm_enabled().register(request.name, request.key, request.offset, request.byte_size)
            return pb.SystemSharedMemoryRegisterResponse()

        return await self._call(context, run)

    async def SystemSharedMemoryUnregister(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        def run() -> Any:
            self._shm_enabled().unregister(request.name or None)
            return pb.SystemSharedMemoryUnregisterResponse()

        return await self._call(context, run)

    async def CudaSharedMemoryStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """No CUDA here: no region is ever registered (a system region of that name is named as such)."""

        def run() -> Any:
            if request.name:
                try:
                    self._system_regions(request.name)
                except TritiumError:
                    raise TritiumError.not_found(
                        f"Unable to find cuda shared memory region: '{request.name}'"
                    ) from None
                raise TritiumError.not_found(
                    f"The region named '{request.name}' is registered as system shared memory, "
                    "not CUDA shared memory"
                )
            return pb.CudaSharedMemoryStatusResponse()

        return await self._call(context, run)

    async def CudaSharedMemoryRegister(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Answered as a Triton build without GPU support answers."""
        error = TritiumError.invalid_arg(
            f"failed to register CUDA shared memory region: '{request.name}', GPUs not supported"
        )
        await _abort(context, error)

    async def CudaSharedMemoryUnregister(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        def run() -> Any:
            self._shm_enabled()
            return pb.CudaSharedMemoryUnregisterResponse()

        return await self._call(context, run)

    # -------------------------------------------------------------------------------- trace / log
    async def TraceSetting(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        def run() -> Any:
            if request.settings:
                data = self._service.update_trace_settings(_control.trace_update(request), request.model_name)
            else:
                data = self._service.trace_settings(request.model_name)
            return _control.trace_settings(data)

        return await self._call(context, run)

    async def LogSettings(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        def run() -> Any:
            if request.settings:
                data = self._service.update_log_settings(_control.log_update(request))
            else:
                data = self._service.log_settings()
            return _control.log_settings(data)

        return await self._call(context, run)

    # ---------------------------------------------------------------------------------- inference
    async def ModelInfer(self, call: InferCall | Malformed, context: grpc.aio.ServicerContext) -> Any:
        """grpc.aio's ModelInfer: :meth:`model_infer_now`, awaited when the data plane answers later."""
        result = self.model_infer_now(call, context)
        if hasattr(result, "__await__"):
            result = await result
        if context.code() in (None, grpc.StatusCode.OK) and self._compression is not None:
            await context.send_initial_metadata(())  # grpc.aio compresses only once headers are sent explicitly
        return result

    def model_infer_now(self, call: InferCall | Malformed, context: Any) -> Any:
        """ModelInfer, answered on the spot when the data plane can (the native transport's eager method): the
        response message (an error sets the context's status), or an awaitable of it."""
        restriction = self._infer_restriction
        if restriction is not None:
            refused = _restriction_error(context, restriction)
            if refused is not None:
                return _fail(context, refused)
        if type(call) is Malformed:
            return _fail(context, TritiumError.invalid_arg(call.message))
        msg = call.msg
        try:
            forwarded = forwarded_headers(self._forward, context.invocation_metadata()) if self._forward else None
            request, shm_outputs = request_from_proto(msg, self._shm, forwarded, call.raw)
            result = self._service.infer_nowait(request)
            if type(result) is not InferenceResponse:
                if type(result) is Completion:  # started at once: answered as it ends, with no task
                    answer: Completion[Any] = Completion(loop=result.get_loop())
                    result.when_settled(partial(self._answer_started, answer, msg, shm_outputs, context))
                    return answer
                return self._infer_later(result, msg, shm_outputs, context)
            out = response_to_proto(result, pb.ModelInferResponse(), self._shm, shm_outputs)
        except Exception as exc:
            return self._infer_failed(exc, msg, context)
        if self._compression is not None:
            context.set_compression(self._compression)
        return out

    async def _infer_later(self, pending: Any, msg: Any, shm_outputs: Any, context: Any) -> Any:
        try:
            response = await pending
            out = response_to_proto(response, pb.ModelInferResponse(), self._shm, shm_outputs)
        except Exception as exc:
            return self._infer_failed(exc, msg, context)
        if self._compression is not None:
            context.set_compression(self._compression)
        return out

    def _answer_started(
        self, answer: Completion[Any], msg: Any, shm_outputs: Any, context: Any, started: Completion[InferenceResponse]
    ) -> None:
        """Settle ``answer`` with the response message of a started inference that ended (unless the call
        ended first: the client reset it, or its deadline passed)."""
        if answer.done():
            return
        if started.cancelled():
            answer.cancel()
            return
        try:
            out = response_to_proto(started.result(), pb.ModelInferResponse(), self._shm, shm_outputs)
        except Exception as exc:
            answer.set_result(self._infer_failed(exc, msg, context))
            return
        if self._compression is not None:
            context.set_compression(self._compression)
        answer.set_result(out)

    def _infer_failed(self, exc: Exception, msg: Any, context: Any) -> Any:
        error = as_tritium_error(exc)
        if error.code is StatusCode.UNSUPPORTED and self._decoupled(msg):
            error = TritiumError.unsupported(DECOUPLED_MESSAGE)
        # Break the cycle error -> traceback -> this frame -> error, which would keep the request (its
        # tensors may be large) alive until a garbage collection runs.
        error.__traceback__ = None
        return _fail(context, error)

    async def _compress(self, context: grpc.aio.ServicerContext) -> None:
        """Compress this call's responses; grpc.aio applies a per-call algorithm only once the initial
        metadata is sent explicitly."""
        context.set_compression(self._compression)
        await context.send_initial_metadata(())

    def _stream_answer_now(self, call: InferCall | Malformed, metadata: Any, forwarded_pattern: Any) -> Any:
        """A stream request of a non-decoupled model, started here: its response when the data plane answered
        synchronously (an error response when it refused the request), else ``(awaitable, shm_outputs)`` to
        finish later. None, with nothing started, when the request needs the general path (decoupled models,
        malformed requests, shutdown)."""
        if type(call) is Malformed or not self.accepting:
            return None
        msg = call.msg
        try:
            if self._stream_decoupled(msg):
                return None
        except Exception:
            return None  # unknown model: the general path answers it
        try:
            forwarded = forwarded_headers(forwarded_pattern, metadata) if forwarded_pattern else None
            request, shm_outputs = request_from_proto(msg, self._shm, forwarded, call.raw)
            result = self._service.infer_nowait(request)
            if type(result) is not InferenceResponse:
                return result, shm_outputs
            return self._stream_response(result, msg, shm_outputs)
        except Exception as exc:
            return _stream_error(msg, as_tritium_error(exc))

    def _stream_response(self, response: InferenceResponse, msg: Any, shm_outputs: Any) -> Any:
        out = pb.ModelStreamInferResponse()
        infer_response = out.infer_response
        response_to_proto(response, infer_response, self._shm, shm_outputs)
        infer_response.parameters["triton_final_response"].bool_param = True
        return out

    def _stream_decoupled(self, msg: pb.ModelInferRequest) -> bool:
        """Whether a stream request may get several responses."""
        return self._service.is_decoupled(msg.model_name, msg.model_version)

    def _decoupled(self, msg: pb.ModelInferRequest) -> bool:
        try:
            return self._service.is_decoupled(msg.model_name, msg.model_version)
        except Exception:
            return False

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[InferCall | Malformed], context: grpc.aio.ServicerContext
    ) -> None:
        """Many requests in flight on one stream: each runs as its own task and writes its responses as
        they come (one write at a time). Errors are in-stream (``error_message``) unless the client opened
        the stream with metadata ``triton_grpc_error: true``; then the first error closes the stream."""
        loop = asyncio.get_running_loop()
        metadata = context.invocation_metadata() or ()
        grpc_error_mode = any(k == "triton_grpc_error" and v == "true" for k, v in metadata)
        forwarded_pattern = self._forward
        write_lock = asyncio.Lock()
        # --grpc-max-response-pool-size: responses produced and waiting to be written; producers wait beyond.
        room = asyncio.Semaphore(self._pool_size) if self._pool_size else None
        tasks: set[asyncio.Task[None]] = set()
        all_done: asyncio.Future[None] = loop.create_future()
        aborted: asyncio.Future[TritiumError] = loop.create_future()
        producers = 1  # the reader, plus one per request in flight
        if self._compression is not None:
            await self._compress(context)

        def finished(task: asyncio.Task[None] | None) -> None:
            nonlocal producers
            if task is not None:
                tasks.discard(task)
            producers -= 1
            if producers == 0 and not all_done.done():
                all_done.set_result(None)

        async def send(out: pb.ModelStreamInferResponse) -> None:
            if room is None:
                async with write_lock:
                    await context.write(out)
                return
            async with room, write_lock:
                await context.write(out)

        async def serve(call: InferCall | Malformed) -> None:
            # Accounting in `finally` rather than a done callback: one loop callback less per request.
            msg = _NO_REQUEST if type(call) is Malformed else call.msg
            try:
                if not self.accepting:
                    raise TritiumError.unavailable(SHUTTING_DOWN_MESSAGE)
                if type(call) is Malformed:
                    raise TritiumError.invalid_arg(call.message)
                forwarded = forwarded_headers(forwarded_pattern, metadata) if forwarded_pattern else None
                request, shm_outputs = request_from_proto(msg, self._shm, forwarded, call.raw)
                if not self._stream_decoupled(msg):
                    # One response: the unary data path is cheaper than the kernel's response iterator.
                    out = pb.ModelStreamInferResponse()
                    infer_response = out.infer_response
                    response_to_proto(await self._service.infer(request), infer_response, self._shm, shm_outputs)
                    infer_response.parameters["triton_final_response"].bool_param = True
                    if room is None:
                        async with write_lock:
                            await context.write(out)
                    else:
                        await send(out)
                    return
                async for response in self._service.infer_stream(request):
                    out = pb.ModelStreamInferResponse()
                    infer_response = out.infer_response
                    response_to_proto(response, infer_response, self._shm, shm_outputs)
                    infer_response.parameters["triton_final_response"].bool_param = response.final
                    await send(out)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = as_tritium_error(exc)
                if grpc_error_mode:
                    if not aborted.done():
                        aborted.set_result(error)
                    return
                await send(_stream_error(msg, error))
            finally:
                finished(asyncio.current_task())

        async def finish(msg: pb.ModelInferRequest, pending: Any, shm_outputs: Any) -> None:
            try:
                try:
                    out = self._stream_response(await pending, msg, shm_outputs)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    out = _stream_error(msg, as_tritium_error(exc))
                async with write_lock:
                    await context.write(out)
            finally:
                finished(asyncio.current_task())

        async def read() -> None:
            nonlocal producers
            eager = room is None and not grpc_error_mode
            async for msg in request_iterator:
                answer = self._stream_answer_now(msg, metadata, forwarded_pattern) if eager else None
                if type(answer) is pb.ModelStreamInferResponse:  # answered on the spot: written here, no task
                    async with write_lock:
                        await context.write(answer)
                    continue
                producers += 1
                if answer is not None:  # started, answered later
                    tasks.add(loop.create_task(finish(msg.msg, *answer)))
                else:
                    tasks.add(loop.create_task(serve(msg)))

        reader = loop.create_task(read())
        reader.add_done_callback(lambda _: finished(None))
        self._readers.add(reader)
        if not self.accepting:
            reader.cancel()
        try:
            await asyncio.wait((all_done, aborted), return_when=asyncio.FIRST_COMPLETED)
            if aborted.done():
                await _abort(context, aborted.result())
            if not reader.cancelled() and reader.exception() is not None:
                raise reader.exception()  # type: ignore[misc]
        finally:
            self._readers.discard(reader)
            reader.cancel()
            for task in list(tasks):
                task.cancel()

    # ------------------------------------------------------------------------------------ helpers
    async def _call(self, context: grpc.aio.ServicerContext, run: Callable[[], Any]) -> Any:
        try:
            return run()
        except Exception as exc:
            await _abort(context, as_tritium_error(exc))


def _stream_error(msg: Any, error: TritiumError) -> pb.ModelStreamInferResponse:
    """The in-stream answer to a failed request: its id, the error message, final."""
    out = pb.ModelStreamInferResponse(error_message=error.message)
    out.infer_response.id = msg.id
    out.infer_response.parameters["triton_final_response"].bool_param = True
    return out


def _checked_version(version: str) -> str:
    from tritium_frontend_grpc._codec import parse_version

    parse_version(version)
    return version


def _no_repository_name(name: str) -> None:
    if name:
        raise TritiumError.unsupported("'repository_name' specification is not supported")


def _restriction_error(context: grpc.aio.ServicerContext, restriction: Restriction) -> TritiumError | None:
    for key, value in context.invocation_metadata() or ():
        if key == restriction.header.lower() and value == restriction.value:
            return None
    return TritiumError.unavailable(f"This protocol is restricted, expecting header '{restriction.header}'")


def _restricted_unary(method: Callable[..., Awaitable[Any]], restriction: Restriction) -> Callable[..., Any]:
    async def restricted(request: Any, context: grpc.aio.ServicerContext) -> Any:
        error = _restriction_error(context, restriction)
        if error is not None:
            await _abort(context, error)
        return await method(request, context)

    return restricted


def _restricted_stream(method: Callable[..., Awaitable[None]], restriction: Restriction) -> Callable[..., Any]:
    async def restricted(request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        error = _restriction_error(context, restriction)
        if error is not None:
            await _abort(context, error)
        await method(request_iterator, context)

    return restricted
