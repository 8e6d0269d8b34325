"""Tritium's gRPC frontend: KServe v2 gRPC (``inference.GRPCInferenceService``) with Triton's extensions.

The plugin module (:mod:`tritium_frontend_grpc.plugin`) only declares the frontend and its options; grpc
and the generated protobuf code are imported when the frontend is created.
"""

__version__ = "0.1.0"
