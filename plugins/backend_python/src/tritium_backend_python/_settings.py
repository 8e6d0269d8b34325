"""How one Python model runs: execution mode, interpreter environment and timeouts.

Read from the model's ``parameters`` (per model) over the backend's ``--backend-config=python,<key>=<value>``
settings (server-wide defaults):

- ``TRITIUM_EXECUTION_MODE`` parameter / ``execution-mode`` setting: ``isolated`` (default: one stub process
  per instance) or ``in-process``;
- ``EXECUTION_ENV_PATH`` parameter: a virtual environment folder or a packed (conda-pack) ``.tar.gz`` whose
  interpreter runs the stub;
- ``stub-timeout-seconds`` setting: limit for starting a stub and importing ``model.py``,
  ``auto_complete_config`` and ``finalize`` (30, Triton's default); ``initialize`` has no limit;
- ``TRITIUM_EXECUTE_TIMEOUT_SECONDS`` parameter / ``execute-timeout-seconds`` setting: limit for one
  ``execute`` in isolated mode; 0 (default) means none;
- ``TRITIUM_PIPELINE_DEPTH`` parameter / ``pipeline-depth`` setting: how many executions of an isolated
  instance may be in flight at once (sent to its stub before the previous one answered; the stub still runs
  them one at a time, in order): 64 by default, 1 turns pipelining off. Models with dynamic or sequence
  batching and decoupled models always use 1 (a batch forms while the instance is busy);
- ``TRITIUM_SERVER_POLL_US`` parameter / ``server-poll-us`` setting: how long the server's event loop keeps
  looking for an isolated instance's answer in shared memory (from the last answer, while executions are in
  flight; only when the loop has nothing else to do) before it asks the stub for a wake-up: 50 by default;
- ``TRITIUM_STUB_POLL_US`` parameter / ``stub-poll-us`` setting: how long a stub keeps looking for the next
  message in shared memory (yielding its processor to anything else runnable) before it sleeps; only when its
  last wait was that short (or, as a probe, after 64 waits in a row that slept), so a stub whose requests come
  further apart sleeps: 500 by default; 0 turns polling off (see docs/backend-python.md for the trade).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from tritium import ConfigError
from tritium.config import ModelConfig

MODES = ("isolated", "in-process")
_MAX_POLL_US = 100_000
SERVER_POLL_US = 50
STUB_POLL_US = 500


@attrs.define(frozen=True, slots=True)
class ModelSettings:
    mode: str = "isolated"
    env_path: str | None = None
    stub_timeout_s: float = 30.0
    execute_timeout_s: float = 0.0
    pipeline_depth: int = 64
    server_poll_us: int = SERVER_POLL_US
    stub_poll_us: int = STUB_POLL_US

    @property
    def in_process(self) -> bool:
        return self.mode == "in-process"


def _number(value: str, what: str, model: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"model '{model}': {what} must be a number of seconds, got '{value}'") from None
    if number < 0 or number != number:
        raise ConfigError(f"model '{model}': {what} must not be negative, got '{value}'")
    return number


def model_settings(config: ModelConfig, options: Mapping[str, str]) -> ModelSettings:
    """The settings of the model ``config`` describes; ConfigError naming the model for bad values."""
    name = config.name
    parameters = {key: value.string_value for key, value in config.parameters.items()}
    mode = parameters.get("TRITIUM_EXECUTION_MODE", options.get("execution-mode", "isolated")).strip().lower()
    if mode not in MODES:
        raise ConfigError(
            f"model '{name}': TRITIUM_EXECUTION_MODE must be 'isolated' or 'in-process', got '{mode}'"
        )
    env_path = parameters.get("EXECUTION_ENV_PATH") or None
    if env_path is not None and mode == "in-process":
        raise ConfigError(
            f"model '{name}': EXECUTION_ENV_PATH needs the isolated execution mode (a stub process runs the "
            "environment's interpreter)"
        )
    stub_timeout = _number(options.get("stub-timeout-seconds", "30"), "stub-timeout-seconds", name) or 30.0
    execute_timeout = _number(
        parameters.get("TRITIUM_EXECUTE_TIMEOUT_SECONDS", options.get("execute-timeout-seconds", "0")),
        "TRITIUM_EXECUTE_TIMEOUT_SECONDS",
        name,
    )
    depth_text = parameters.get("TRITIUM_PIPELINE_DEPTH", options.get("pipeline-depth", "64")).strip()
    if not depth_text.isdigit() or not 1 <= int(depth_text) <= 64:
        raise ConfigError(f"model '{name}': TRITIUM_PIPELINE_DEPTH must be a whole number from 1 to 64, got "
                          f"'{depth_text}'")
    polls = []
    for parameter, option, default in (("TRITIUM_SERVER_POLL_US", "server-poll-us", SERVER_POLL_US),
                                       ("TRITIUM_STUB_POLL_US", "stub-poll-us", STUB_POLL_US)):
        text = parameters.get(parameter, options.get(option, str(default))).strip()
        if not text.isdigit() or int(text) > _MAX_POLL_US:
            raise ConfigError(f"model '{name}': {parameter} must be a whole number of microseconds from 0 to "
                              f"{_MAX_POLL_US}, got '{text}'")
        polls.append(int(text))
    return ModelSettings(mode, env_path, stub_timeout, execute_timeout, int(depth_text), *polls)
