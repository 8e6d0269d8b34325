"""Model configuration: Triton's ModelConfig read from text and JSON, defaults, validation (the public face
is :mod:`tritium.config`). Imports only :mod:`tritium._base` and the protobuf schema."""
