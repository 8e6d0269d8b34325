"""Tritium: a Triton-compatible inference server kernel.

The public API is what ``__all__`` lists; modules starting with ``_`` are private.
"""

from tritium import codec, protocol
from tritium._datatypes import DataType
from tritium._errors import ConfigError, FailureReason, PluginError, StatusCode, TritiumError
from tritium._events import (
    BatchExecuted,
    Event,
    ModelLoaded,
    ModelUnloaded,
    QueueSizeChanged,
    RequestCompleted,
)
from tritium._install import install_command
from tritium._instances import InstancePool
from tritium._options import ServerOptions
from tritium._server import TRITON_COMPAT_VERSION, Server, StartupError
from tritium._service import InferenceService, ServiceCapability
from tritium._shm import SharedMemoryRegistry
from tritium._specs import BackendSpec, FrontendSpec, MetricsSinkSpec, OptionSpec, SchedulerSpec
from tritium._tensors import InferenceRequest, InferenceResponse, ParameterValue, RequestedOutput, Tensor
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

__version__ = "0.1.0"

PLUGIN_API_VERSION = 1
"""The version of the plugin contract (hookspecs, ``tritium.abc``, the specs, ``tritium.testing``). Kernel
releases ``0.<PLUGIN_API_VERSION>.*`` implement it; a change that can break a plugin written against it starts
the next kernel minor release. Plugins pin ``tritium>=0.1,<0.2`` (see docs/plugins.md, "Stability")."""

__all__ = [
    "Backend",
    "BackendSpec",
    "Batch",
    "BatchExecuted",
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
    "__version__",
]
