"""Server-wide gauges: CPU utilization and memory from /proc, GPU metrics from NVML.

Read on a timer (``--metrics-interval-ms``), never on the request path. CPU utilization is Triton's: the
share of non-idle jiffies (user, nice, system, irq, softirq, steal over those plus idle and iowait) since the
previous reading; used memory is MemTotal - MemAvailable. GPU values come from NVIDIA's NVML bindings
(``pip install tritium-metrics-prometheus[gpu]``), labelled ``gpu_uuid`` like Triton's DCGM-based ones.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import attrs

_log = logging.getLogger("tritium.metrics")


# --------------------------------------------------------------------------------------------- CPU
@attrs.define(frozen=True, slots=True)
class CpuTimes:
    """The aggregate ``cpu`` line of /proc/stat (jiffies)."""

    user: int = 0
    nice: int = 0
    system: int = 0
    idle: int = 0
    iowait: int = 0
    irq: int = 0
    softirq: int = 0
    steal: int = 0

    @property
    def busy(self) -> int:
        return self.user + self.nice + self.system + self.irq + self.softirq + self.steal

    @property
    def idle_total(self) -> int:
        return self.idle + self.iowait


def parse_proc_stat(text: str) -> CpuTimes:
    """The aggregate CPU times of a /proc/stat text (ValueError if it has no ``cpu`` line)."""
    first = text.split("\n", 1)[0]
    fields = first.split()
    if not fields or fields[0] != "cpu":
        raise ValueError("Failed to find aggregate CPU info in /proc/stat.")
    numbers = [int(f) for f in fields[1:9]]
    numbers += [0] * (8 - len(numbers))
    return CpuTimes(*numbers)


def parse_meminfo(text: str) -> tuple[int, int]:
    """(total, used) bytes from a /proc/meminfo text; used = MemTotal - MemAvailable."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith(":"):
            values[parts[0][:-1]] = int(parts[1]) * 1024
    if "MemTotal" not in values or "MemAvailable" not in values:
        raise ValueError("Failed to find desired values in /proc/meminfo.")
    total, available = values["MemTotal"], values["MemAvailable"]
    if available > total:
        raise ValueError("Available bytes shouldn't be greater than Total bytes")
    return total, total - available


def cpu_utilization(new: CpuTimes, old: CpuTimes) -> float:
    """Busy share of the jiffies between two readings, in [0, 1] (0 when no time passed)."""
    busy = max(new.user - old.user, 0) + max(new.nice - old.nice, 0) + max(new.system - old.system, 0)
    busy += max(new.irq - old.irq, 0) + max(new.softirq - old.softirq, 0) + max(new.steal - old.steal, 0)
    idle = max(new.idle - old.idle, 0) + max(new.iowait - old.iowait, 0)
    total = busy + idle
    return busy / total if total else 0.0


@attrs.define(slots=True)
class CpuReading:
    utilization: float
    memory_total: float
    memory_used: float


class CpuReader:
    """Reads /proc (paths replaceable for tests); each :meth:`read` reports utilization since the last."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self._stat = proc / "stat"
        self._meminfo = proc / "meminfo"
        self._last: CpuTimes | None = None
        try:
            self._last = parse_proc_stat(self._stat.read_text())
        except (OSError, ValueError) as exc:
            _log.warning("error initializing CPU metrics, CPU utilization may not be available: %s", exc)

    def read(self) -> CpuReading:
        utilization = 0.0
        try:
            times = parse_proc_stat(self._stat.read_text())
            if self._last is not None:
                utilization = cpu_utilization(times, self._last)
            self._last = times
        except (OSError, ValueError):
            pass
        total = used = 0.0
        try:
            total_i, used_i = parse_meminfo(self._meminfo.read_text())
            total, used = float(total_i), float(used_i)
        except (OSError, ValueError):
            pass
        return CpuReading(utilization, total, used)


# --------------------------------------------------------------------------------------------- GPU
@attrs.define(slots=True)
class GpuReading:
    uuid: str
    utilization: float
    memory_total: float
    memory_used: float
    power_usage: float
    power_limit: float
    energy_joules: float  # since the first reading


class GpuReader:
    """Reads every GPU through NVML. ``nvml`` is the ``pynvml`` module (imported when None); a missing
    library or driver leaves :attr:`available` False and GPU metrics absent, as on a CPU-only Triton."""

    def __init__(self, nvml: Any = None) -> None:
        self.available = False
        self._nvml = nvml
        self._devices: list[tuple[str, Any]] = []
        self._first_energy: dict[str, float] = {}
        try:
            if self._nvml is None:
                import pynvml

                self._nvml = pynvml
            self._nvml.nvmlInit()
            for index in range(self._nvml.nvmlDeviceGetCount()):
                handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                uuid = self._nvml.nvmlDeviceGetUUID(handle)
                self._devices.append((uuid.decode() if isinstance(uuid, bytes) else str(uuid), handle))
        except Exception as exc:  # no bindings, no driver, no GPU: GPU metrics are just absent
            _log.info("GPU metrics unavailable: %s", exc)
            return
        self.available = bool(self._devices)
        for uuid, _ in self._devices:
            _log.info("Collecting metrics for GPU %s", uuid)

    def read(self) -> list[GpuReading]:
        readings = []
        nvml = self._nvml
        for uuid, handle in self._devices:
            utilization = _try(lambda h=handle: nvml.nvmlDeviceGetUtilizationRates(h).gpu / 100.0)
            memory = _try(lambda h=handle: nvml.nvmlDeviceGetMemoryInfo(h), None)
            power = _try(lambda h=handle: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0)
            limit = _try(lambda h=handle: nvml.nvmlDeviceGetPowerManagementLimit(h) / 1000.0)
            energy_mj = _try(lambda h=handle: float(nvml.nvmlDeviceGetTotalEnergyConsumption(h)), None)
            energy = 0.0
            if energy_mj is not None:
                first = self._first_energy.setdefault(uuid, energy_mj)
                energy = max(energy_mj - first, 0.0) / 1000.0
            readings.append(
                GpuReading(
                    uuid,
                    utilization,
                    float(memory.total) if memory is not None else 0.0,
                    float(memory.used) if memory is not None else 0.0,
                    power,
                    limit,
                    energy,
                )
            )
        return readings

    def close(self) -> None:
        if self.available:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self.available = False


def _try(read: Any, default: Any = 0.0) -> Any:
    try:
        return read()
    except Exception:
        return default
