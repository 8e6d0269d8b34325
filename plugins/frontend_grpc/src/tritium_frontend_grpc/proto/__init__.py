"""The gRPC frontend's protobuf schema (``grpc_service.proto``) and its generated module.

``grpc_service_pb2`` registers its file in ``tritium.proto.POOL`` (not protobuf's default pool) so that it
coexists with tritonclient's generated code in one process; regenerate it with
``plugins/frontend_grpc/tools/gen_protos.py``.
"""
