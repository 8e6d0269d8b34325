"""Tritium: a Triton-compatible inference server kernel.

The public API is what ``__all__`` lists; modules starting with ``_`` are private.
"""

from tritium import codec, protocol
from tritium._base.completion import Completion
from tritium._base.datatypes import DataType
from tritium._base.devices import visible_gpu_count
from tritium._base.errors import ConfigError, FailureReason, PluginError, StatusCode, TritiumError
from tritium._base.events import (
    BatchExecuted,
    Event,
    ModelLoaded,
    ModelUnloaded,
    QueueSizeChanged,
    RequestCompleted,
)
from tritium._base.install import install_command
from tritium._base.options import ServerOptions
from tritium._base.specs import BackendSpec, FrontendSpec, MetricsSinkSpec, OptionSpec, SchedulerSpec
from tritium._base.tensors import InferenceRequest, InferenceResponse, ParameterValue, RequestedOutput, Tensor
from tritium._base.version import PLUGIN_API_VERSION, __version__
from tritium._runtime.instances import InstancePool
from tritium._runtime.server import TRITON_COMPAT_VERSION, Server, StartupError
from tritium._runtime.service import InferenceService, ServiceCapability
from tritium._runtime.shm import SharedMemoryRegistry
from tritium.abc import (
    Backend,
    Batch,
    Frontend,
    InstanceExecutor,
    InstanceLease,
    InstancePlacement,
    MetricsSink,
    ModelClient,
    ModelInstance,
    ModelSource,
    ResponseSender,
    Scheduler,
    SchedulerContext,
)
from tritium.hookspecs import hookimpl, hookspec

__all__ = [
    "Backend",
    "BackendSpec",
    "Batch",
    "BatchExecuted",
    "Completion",
    "ConfigError",
    "DataType",
    "Event",
    "FailureReason",
    "Frontend",
    "FrontendSpec",
    "InferenceRequest",
    "InferenceResponse",
    "InferenceService",
    "InstanceExecutor",
    "InstanceLease",
    "InstancePlacement",
    "InstancePool",
    "MetricsSink",
    "MetricsSinkSpec",
    "ModelClient",
    "ModelInstance",
    "ModelLoaded",
    "ModelSource",
    "ModelUnloaded",
    "OptionSpec",
    "ParameterValue",
    "PluginError",
    "QueueSizeChanged",
    "RequestCompleted",
    "RequestedOutput",
    "ResponseSender",
    "Scheduler",
    "SchedulerContext",
    "SchedulerSpec",
    "Server",
    "ServerOptions",
    "ServiceCapability",
    "SharedMemoryRegistry",
    "StartupError",
    "StatusCode",
    "Tensor",
    "TritiumError",
    "PLUGIN_API_VERSION",
    "TRITON_COMPAT_VERSION",
    "codec",
    "protocol",
    "hookimpl",
    "hookspec",
    "install_command",
    "visible_gpu_count",
    "__version__",
]
