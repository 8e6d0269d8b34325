"""config.pbtxt: protobuf text format in and out.

Triton reads config.pbtxt with protobuf's C++ text-format parser; Python's parser accepts the same syntax
(comments, ``[a, b]`` lists, ``<>`` or ``{}`` blocks, optional ``:`` before blocks, ``,``/``;`` separators,
enum names or numbers) and rejects the same mistakes (unknown fields, a singular field given twice, two
members of one oneof). Errors name the file, line and column.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from google.protobuf import text_format

from tritium._model_config.errors import ModelConfigError
from tritium.proto.model_config_pb2 import ModelConfig

_POSITION = re.compile(r"^(\d+):(\d+) : ")


def parse_model_config(text: str, source: str = "<string>") -> ModelConfig:
    """Parse config.pbtxt text into a new ModelConfig (no defaults filled, nothing validated).

    Raises :class:`ModelConfigError` (a :class:`tritium.ConfigError`) naming ``source``, the line and
    column, and the problem.
    """
    config = ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        line, column, detail = _split_position(str(exc), exc.GetLine() or 0, exc.GetColumn() or 0)
        raise ModelConfigError(source, "", detail, line=line, column=column) from None
    except Exception as exc:  # the parser may raise others (e.g. on odd characters): same contract
        raise ModelConfigError(source, "", f"failed to parse text proto: {exc}") from None
    return config


def load_model_config(path: str | os.PathLike[str]) -> ModelConfig:
    """Read and parse a config.pbtxt file; errors name the file (unreadable file, bad UTF-8, syntax)."""
    source = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelConfigError(source, "", f"failed to read text proto: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelConfigError(source, "", f"failed to read text proto: not UTF-8 ({exc.reason})") from None
    return parse_model_config(text, source)


def format_model_config(config: ModelConfig) -> str:
    """Render a config as config.pbtxt text (protobuf text format; parses back to an equal message)."""
    return str(text_format.MessageToString(config))


def _split_position(message: str, line: int, column: int) -> tuple[int, int, str]:
    """Take the ``"L:C : "`` prefix protobuf puts on parse errors off the message."""
    match = _POSITION.match(message)
    if match:
        return int(match.group(1)), int(match.group(2)), message[match.end() :]
    return line, column, message
