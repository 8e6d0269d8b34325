"""Facts of Triton's protocols that every frontend shares: restricted API categories and their flag syntax,
and the request parameter keys reserved for Triton.

Frontends map wire formats; what a category or a reserved key *is* lives here once.
"""

from __future__ import annotations

from collections.abc import Sequence

RESTRICTED_CATEGORIES: tuple[str, ...] = (
    "health",
    "metadata",
    "inference",
    "shared-memory",
    "model-config",
    "model-repository",
    "statistics",
    "trace",
    "logging",
)
"""What ``--http-restricted-api`` / ``--grpc-restricted-protocol`` may restrict (Triton's categories)."""

RESERVED_PARAMETER_KEYS: tuple[str, ...] = (
    "sequence_id",
    "sequence_start",
    "sequence_end",
    "priority",
    "timeout",
    "headers",
    "binary_data_output",
)
"""Request parameter keys with a meaning to Triton (header forwarding may not set them; nor keys starting
with ``triton_``)."""

ALLOWED_TRITON_PARAMETERS: tuple[str, ...] = ("triton_enable_empty_final_response",)
"""Request parameters starting with ``triton_`` that clients may set."""


def is_reserved_parameter(key: str) -> bool:
    """Whether ``key`` is reserved for Triton (a known key or the ``triton_`` prefix)."""
    return key in RESERVED_PARAMETER_KEYS or key.startswith("triton_")


def parse_restrictions(
    specs: Sequence[str] | str, *, flag: str, noun: str, format_hint: str
) -> dict[str, tuple[str, str]]:
    """Parse repeated ``<category>[,<category>...]:<key>=<value>`` values into category -> (key, value).

    ``flag`` (``--http-restricted-api``), ``noun`` (``api`` / ``protocol``) and ``format_hint`` word the
    errors as tritonserver does. Raises ValueError for a malformed value, an unknown category, or a category
    given in two groups.
    """
    if isinstance(specs, str):
        specs = [specs]
    restrictions: dict[str, tuple[str, str]] = {}
    for spec in specs:
        categories, colon, rest = spec.partition(":")
        key, equals, value = rest.partition("=")
        if not colon or not equals or not categories or not key:
            raise ValueError(f"{flag} option format is '{format_hint}'. Got {spec}")
        for category in categories.split(","):
            category = category.strip()
            if not category:
                continue
            if category not in RESTRICTED_CATEGORIES:
                raise ValueError(f"unknown restricted {noun} '{category}'")
            if category in restrictions:
                raise ValueError(f"restricted {noun} '{category}' can not be specified in multiple config groups")
            restrictions[category] = (key, value)
    return restrictions


def request_prefix(request_id: str) -> str:
    """Triton core's ``[request id: <id>] `` prefix of per-request error messages."""
    return f"[request id: {request_id or '<id_unknown>'}] "


def parse_model_version(version: str) -> int:
    """A wire model version string as a number, -1 for ``""`` (the newest ready version).

    Parses like C++ ``std::stol`` (leading blanks and a sign, then digits; trailing text ignored) and raises
    INVALID_ARG with Triton's messages for text that is not a number or a negative version.
    """
    from tritium._base.errors import TritiumError

    if not version:
        return -1
    text = version.strip()
    digits = text[1:] if text[:1] in "+-" else text
    end = 0
    while end < len(digits) and digits[end].isdigit():
        end += 1
    if end == 0:
        raise TritiumError.invalid_arg(
            f"failed to get model version from specified version string '{version}' (details: stol), "
            "version should be an integral value > 0"
        )
    number = int(digits[:end])
    if text[:1] == "-":
        number = -number
    if number < 0:
        raise TritiumError.invalid_arg(
            f"invalid model version specified '{version}' , version should be an integral value > 0"
        )
    return number
