"""Logging set up by ``tritium serve``: tritonserver's line formats and severity switches."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tritium import ServerOptions
from tritium._runtime.log_config import TritonFormatter, configure_logging


def record(
    level: int = logging.INFO, name: str = "tritium.server", created: float = 1732551600.123456
) -> logging.LogRecord:
    rec = logging.LogRecord(name, level, "/x/_server.py", 42, "hello %s", ("world",), None)
    rec.created = created
    rec.process = 1234
    return rec


def test_default_format() -> None:
    # 1732551600 is 2024-11-25T16:20:00Z
    assert TritonFormatter().format(record()) == "I1125 16:20:00.123456 1234 _server.py:42] hello world"
    assert TritonFormatter().format(record(logging.ERROR)).startswith("E1125 ")
    assert TritonFormatter().format(record(logging.WARNING)).startswith("W1125 ")
    assert TritonFormatter().format(record(logging.DEBUG)).startswith("V1125 ")


def test_iso8601_format() -> None:
    text = TritonFormatter("ISO8601").format(record(logging.WARNING))
    assert text == "2024-11-25T16:20:00Z W 1234 _server.py:42] hello world"


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def emit_all() -> None:
    for name in ("tritium.test", "asyncio"):
        log = logging.getLogger(name)
        log.debug("debug from %s", name)
        log.info("info from %s", name)
        log.warning("warning from %s", name)
        log.error("error from %s", name)


@pytest.mark.usefixtures("restore_root")
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (ServerOptions(), {"info", "warning", "error"}),
        (ServerOptions(log_info=False), {"warning", "error"}),
        (ServerOptions(log_warning=False, log_error=False), {"info"}),
        (ServerOptions(log_verbose=1), {"debug tritium", "info", "warning", "error"}),
        (ServerOptions(log_verbose=2), {"debug tritium", "debug asyncio", "info", "warning", "error"}),
    ],
)
def test_severity_switches(options: ServerOptions, expected: set[str]) -> None:
    stream = io.StringIO()
    configure_logging(options, stream=stream)
    emit_all()
    seen = set()
    for line in stream.getvalue().splitlines():
        match = re.search(r"\] (\w+) from (\S+)", line)
        assert match, line
        kind, name = match.groups()
        seen.add(f"debug {name.split('.')[0]}" if kind == "debug" else kind)
    assert seen == expected


@pytest.mark.usefixtures("restore_root")
def test_log_file_and_runtime_update(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    handler = configure_logging(ServerOptions(log_file=str(path)))
    logging.getLogger("tritium.test").info("first")
    handler.update(log_format="ISO8601", info=False, verbose=1)
    logging.getLogger("tritium.test").info("dropped")
    logging.getLogger("tritium.test").debug("second")
    again = configure_logging(ServerOptions(log_file=str(path)))  # replaces, never duplicates
    logging.getLogger("tritium.test").warning("third")
    again.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert re.match(r"I\d{4} .*\] first$", lines[0])
    assert re.match(r"\d{4}-\d\d-\d\dT\S+Z V .*\] second$", lines[1])
    assert re.match(r"W\d{4} .*\] third$", lines[2])
