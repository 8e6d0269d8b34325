"""JSON in and out, with Triton's error messages.

Parsing uses orjson (fast); when orjson refuses a document, python-rapidjson parses it again, because
Triton parses with RapidJSON: it accepts ``NaN``/``Infinity`` as Triton does, and its error text is
exactly Triton's (``failed to parse the request JSON buffer: <RapidJSON message> at <offset>``).
The ``as_*`` accessors reproduce TritonJson's typed reads and their messages. Triton answers all of those
with INTERNAL (HTTP 500); Tritium answers INVALID_ARG (HTTP 400), since the request is at fault.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import rapidjson

from tritium import TritiumError
from tritium_frontend_http._errors import invalid, malformed

MAX_NESTING = 100
"""Triton's ``HTTP_MAX_JSON_NESTING_DEPTH``."""
NESTING_MESSAGE = f"JSON nesting depth exceeds maximum allowed limit ({MAX_NESTING})"

NOT_STRING = "attempt to access JSON non-string as string"
NOT_BOOL = "attempt to access JSON non-boolean as boolean"
NOT_INT = "attempt to access JSON non-signed-integer as signed-integer"
NOT_UINT = "attempt to access JSON non-unsigned-integer as unsigned-integer"
NOT_NUMBER = "attempt to access JSON non-number as double"
NOT_ARRAY = "attempt to access JSON non-array as array"
NOT_OBJECT = "attempt to access JSON non-object as object"
NOT_MEMBERS = "attempt to get members for non-object"

_RAPIDJSON_ERROR = re.compile(r"Parse error at offset (\d+): (.*)", re.DOTALL)
_U64 = 1 << 64
_I63 = 1 << 63

dumps = orjson.dumps
"""Serialize to JSON bytes (orjson; numpy arrays need ``OPT_SERIALIZE_NUMPY``)."""
OPT_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def parse(buffer: bytes | bytearray | memoryview) -> Any:
    """Parse a JSON document; raise TritiumError with Triton's message when it is not valid JSON."""
    try:
        return orjson.loads(buffer)
    except orjson.JSONDecodeError as exc:
        return _parse_slow(buffer, exc)


def _parse_slow(buffer: bytes | bytearray | memoryview, exc: Exception) -> Any:
    if "depth limit" in str(exc):
        raise invalid(NESTING_MESSAGE) from None
    try:
        return rapidjson.loads(bytes(buffer), number_mode=rapidjson.NM_NAN)
    except RecursionError:
        raise invalid(NESTING_MESSAGE) from None
    except (rapidjson.JSONDecodeError, ValueError, UnicodeDecodeError) as slow_exc:
        text = str(slow_exc)
        match = _RAPIDJSON_ERROR.match(text)
        if match is not None:
            if "recursion depth" in match.group(2):
                raise invalid(NESTING_MESSAGE) from None
            message = f"{match.group(2)} at {match.group(1)}"
        else:
            message = text
        raise malformed(f"failed to parse the request JSON buffer: {message}") from None


def missing(name: str) -> TritiumError:
    """TritonJson's error for reading an absent member."""
    return malformed(f"attempt to access non-existing object member '{name}'")


def as_str(value: Any) -> str:
    if type(value) is not str:
        raise malformed(NOT_STRING)
    return value


def as_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise malformed(NOT_BOOL)
    return value


def as_uint(value: Any) -> int:
    if type(value) is not int or not 0 <= value < _U64:
        raise malformed(NOT_UINT)
    return value


def as_int(value: Any) -> int:
    if type(value) is not int or not -_I63 <= value < _I63:
        raise malformed(NOT_INT)
    return value


def as_number(value: Any) -> float:
    if type(value) not in (int, float):
        raise malformed(NOT_NUMBER)
    return float(value)


def as_list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise malformed(NOT_ARRAY)
    return value


def as_object(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise malformed(NOT_OBJECT)
    return value


def member_list(obj: Any, name: str) -> list[Any]:
    """TritonJson ``MemberAsArray``: the member, which must exist and be an array."""
    if type(obj) is not dict or name not in obj:
        raise missing(name)
    return as_list(obj[name])


def member_str(obj: Any, name: str) -> str:
    """TritonJson ``MemberAsString``."""
    if type(obj) is not dict or name not in obj:
        raise missing(name)
    return as_str(obj[name])
