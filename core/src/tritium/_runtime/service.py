"""The protocol-neutral data plane: the one service every frontend calls.

:class:`InferenceService` is an abstract interface. Health, metadata and inference are required; the rest
are optional parts, each a :class:`ServiceCapability` the service reports in :attr:`InferenceService.capabilities`
(a frontend asks :meth:`InferenceService.supports` instead of trying and catching). An optional method of a
service without that capability answers UNSUPPORTED. The kernel's data plane has every capability; the reference
fake for frontend tests is :class:`tritium.testing.service.ReferenceService`.

Control-plane answers are plain dicts shaped exactly like Triton's HTTP/JSON bodies (which use the same
field names as its gRPC messages, so a gRPC frontend can ``json_format.ParseDict`` them). Failures raise
:class:`tritium.TritiumError` with Triton's messages; frontends only map the status code.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from tritium._base.errors import TritiumError
from tritium._base.tensors import InferenceRequest, InferenceResponse

if TYPE_CHECKING:
    from tritium._runtime.shm import SharedMemoryRegistry
    from tritium.config import ModelConfig


class ServiceCapability(enum.Enum):
    """An optional part of an :class:`InferenceService` (the value is Triton's extension name)."""

    STATISTICS = "statistics"
    """:meth:`InferenceService.statistics`."""
    MODEL_REPOSITORY = "model_repository"
    """:meth:`InferenceService.repository_index`, :meth:`~InferenceService.load_model`,
    :meth:`~InferenceService.unload_model`."""
    LOGGING = "logging"
    """:meth:`InferenceService.log_settings`, :meth:`~InferenceService.update_log_settings`."""
    TRACE_SETTINGS = "trace"
    """:meth:`InferenceService.trace_settings`, :meth:`~InferenceService.update_trace_settings` (the settings;
    whether requests are traced is another matter: see the server metadata's extensions)."""
    SYSTEM_SHARED_MEMORY = "system_shared_memory"
    """:attr:`InferenceService.shared_memory`."""


def _unsupported(what: str) -> TritiumError:
    return TritiumError.unsupported(f"{what} is not supported by this server")


class InferenceService(abc.ABC):
    """Health, metadata, configuration, inference, statistics, repository control and settings.

    Version arguments are strings as they arrive from the wire: ``""`` means "the version the policy
    serves" (newest ready); anything else must be a decimal version number. Abstract methods are required;
    the others belong to a :class:`ServiceCapability` listed in :attr:`capabilities`, and answer UNSUPPORTED
    in a service without it.
    """

    # ----------------------------------------------------------------------------------- capabilities
    @property
    def capabilities(self) -> frozenset[ServiceCapability]:
        """The optional parts this service implements. The default: none."""
        return frozenset()

    def supports(self, capability: ServiceCapability) -> bool:
        """Whether :attr:`capabilities` holds ``capability``."""
        return capability in self.capabilities

    # ----------------------------------------------------------------------------------------- health
    @abc.abstractmethod
    def server_live(self) -> bool:
        """True once started and until shutdown begins (then frontends answer 503 / not serving)."""

    @abc.abstractmethod
    def server_ready(self) -> bool:
        """Triton's readiness: server up and, under strict readiness, every model that should be loaded
        has a READY version (models unloaded on request do not count)."""

    @property
    def stopping(self) -> bool:
        """True once shutdown began: health endpoints answer 503 / UNAVAILABLE. The default: False."""
        return False

    @abc.abstractmethod
    def model_ready(self, name: str, version: str = "") -> bool:
        """True when that model version (or, for ``""``, some version) is READY. Never raises."""

    # --------------------------------------------------------------------------------------- metadata
    @abc.abstractmethod
    def server_metadata(self) -> dict[str, Any]:
        """``{"name", "version", "extensions": [...]}``; extensions are those the installed frontends
        actually support, in Triton's order."""

    @abc.abstractmethod
    def model_metadata(self, name: str, version: str = "") -> dict[str, Any]:
        """``{"name", "versions": [str], "platform", "inputs": [{"name","datatype","shape"}], "outputs"}``.

        Raises NOT_FOUND ``Request for unknown model: 'm' is not found`` or UNAVAILABLE when no version
        is ready."""

    @abc.abstractmethod
    def model_config(self, name: str, version: str = "") -> ModelConfig:
        """The normalized ModelConfig message of a ready model version (render it with
        :func:`tritium.config.model_config_to_json`)."""

    @abc.abstractmethod
    def is_decoupled(self, name: str, version: str = "") -> bool:
        """Whether the model uses the decoupled transaction policy (raises like model_metadata)."""

    # -------------------------------------------------------------------------------------- inference
    @abc.abstractmethod
    async def infer(self, request: InferenceRequest) -> InferenceResponse:
        """Validate ``request`` against the model config (Triton's messages, prefixed with
        ``[request id: <id>] ``), schedule it and return the response. Decoupled models are rejected
        with UNSUPPORTED; frontends that can stream use :meth:`infer_stream`."""

    def infer_nowait(self, request: InferenceRequest) -> InferenceResponse | Awaitable[InferenceResponse]:
        """:meth:`infer` without the await where the request can run right away: the response itself when
        the model answered synchronously (a fast model running inline on a free instance), otherwise an
        awaitable of it. Raises like :meth:`infer`.

        Lets a frontend answer on the spot (no task, no event loop round trip per request); the default
        just returns ``self.infer(request)``, so every implementation supports it.
        """
        return self.infer(request)

    @abc.abstractmethod
    def infer_stream(self, request: InferenceRequest) -> AsyncIterator[InferenceResponse]:
        """Responses of one request: exactly one for a non-decoupled model; 0..N for a decoupled one,
        the last marked ``final=True`` (an empty final response is yielded only when the request set
        ``triton_enable_empty_final_response``; otherwise a final flag that comes without data is dropped, as
        Triton does, and the stream just ends). Errors are raised from the iterator."""

    # ------------------------------------------------------------------------------------- statistics
    def statistics(self, name: str = "", version: str = "") -> dict[str, Any]:
        """``{"model_stats": [...]}`` in the shape of Triton's statistics extension; ``name`` "" = all
        models, all versions. Capability :attr:`ServiceCapability.STATISTICS`."""
        raise _unsupported("the statistics extension")

    # ----------------------------------------------------------------------------- repository control
    def repository_index(self, repository: str = "", ready_only: bool = False) -> list[dict[str, Any]]:
        """``[{"name", "version", "state", "reason"}]`` for every model the repositories hold (``reason`` only
        when there is one, as Triton writes it). Capability
        :attr:`ServiceCapability.MODEL_REPOSITORY`."""
        raise _unsupported("the model repository extension")

    async def load_model(
        self, name: str, *, config: str | None = None, files: Mapping[str, bytes] | None = None
    ) -> None:
        """Load or reload a model (explicit mode only). ``config`` is ModelConfig JSON overriding the
        file; ``files`` maps ``"<version>/<path>"`` (the part after ``file:``) to content and requires
        ``config``. Returns when the model is READY; raises with the load error otherwise. Capability
        :attr:`ServiceCapability.MODEL_REPOSITORY`."""
        raise _unsupported("the model repository extension")

    async def unload_model(self, name: str, *, unload_dependents: bool = False) -> None:
        """Unload a model (explicit mode only), waiting for its requests in flight. Capability
        :attr:`ServiceCapability.MODEL_REPOSITORY`."""
        raise _unsupported("the model repository extension")

    # ------------------------------------------------------------------------------- logging / trace
    def log_settings(self) -> dict[str, Any]:
        """``{"log_file", "log_info", "log_warning", "log_error", "log_verbose_level", "log_format"}``.
        Capability :attr:`ServiceCapability.LOGGING`."""
        raise _unsupported("the logging extension")

    def update_log_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Apply the given keys (INVALID_ARG for unknown keys, wrong types, or ``log_file``) and return
        every setting. Capability :attr:`ServiceCapability.LOGGING`."""
        raise _unsupported("the logging extension")

    def trace_settings(self, model: str = "") -> dict[str, Any]:
        """Trace settings (global, or a model's with global fallbacks), values as strings/lists. Capability
        :attr:`ServiceCapability.TRACE_SETTINGS`."""
        raise _unsupported("trace settings")

    def update_trace_settings(self, settings: Mapping[str, Any], model: str = "") -> dict[str, Any]:
        """Update the given keys (a None value clears a model's key back to global) and return all.
        Capability :attr:`ServiceCapability.TRACE_SETTINGS`."""
        raise _unsupported("trace settings")

    # ---------------------------------------------------------------------------------- shared memory
    @property
    def shared_memory(self) -> SharedMemoryRegistry:
        """System shared memory regions registered by clients (shared by every frontend). Capability
        :attr:`ServiceCapability.SYSTEM_SHARED_MEMORY`."""
        raise _unsupported("the system shared memory extension")
