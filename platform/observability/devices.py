"""Level a: accelerator metrics by device class; absent (not zero) where they cannot be read.

* ``cuda``: NVML through ``nvidia-ml-py`` (utilisation, memory used/total,
  temperature, power) for every visible GPU.
* ``npu``: the ``npu-smi info`` summary table (AICore %, HBM used/total,
  temperature, power).  The parser follows the table layout of Ascend's
  ``npu-smi`` 23.x; it has been tested on a transcript, not on hardware.
* ``cpu`` (or anything else): no collector, so no ``npusuite_device_*`` series.

A reading that fails at scrape time leaves that series out of that scrape.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily

from npusuite.platform.observability import names as N

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceReading:
    index: int
    utilization_ratio: float | None = None
    memory_used_bytes: float | None = None
    memory_total_bytes: float | None = None
    temperature_celsius: float | None = None
    power_watts: float | None = None


def families(kind: str, readings: list[DeviceReading]) -> Iterator[GaugeMetricFamily]:
    """Pure: readings -> gauge families (a field that is None is left out for that device)."""
    spec = ((N.DEVICE_UTILIZATION_RATIO, "Accelerator busy share.", "utilization_ratio"),
            (N.DEVICE_MEMORY_USED_BYTES, "Accelerator memory in use.", "memory_used_bytes"),
            (N.DEVICE_MEMORY_TOTAL_BYTES, "Accelerator memory.", "memory_total_bytes"),
            (N.DEVICE_TEMPERATURE_CELSIUS, "Accelerator temperature.", "temperature_celsius"),
            (N.DEVICE_POWER_WATTS, "Accelerator power draw.", "power_watts"))
    for name, doc, attr in spec:
        family = GaugeMetricFamily(name, doc, labels=["kind", "index"])
        any_value = False
        for r in readings:
            value = getattr(r, attr)
            if value is not None:
                family.add_metric([kind, str(r.index)], float(value))
                any_value = True
        if any_value:
            yield family


class NvmlCollector:
    """CUDA devices through NVML.  Construct with :meth:`open` (None when NVML is unavailable)."""

    def __init__(self, nvml) -> None:
        self.nvml = nvml

    @classmethod
    def open(cls) -> NvmlCollector | None:
        try:
            import pynvml

            pynvml.nvmlInit()
            pynvml.nvmlDeviceGetCount()
        except Exception as exc:  # no driver, no GPU, no library: device metrics are absent
            logger.info("NVML unavailable (%s): no device metrics", exc)
            return None
        return cls(pynvml)

    def _read(self, index: int) -> DeviceReading:
        nv = self.nvml
        handle = nv.nvmlDeviceGetHandleByIndex(index)

        def attempt(fn):
            try:
                return fn()
            except nv.NVMLError:
                return None

        util = attempt(lambda: nv.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0)
        mem = attempt(lambda: nv.nvmlDeviceGetMemoryInfo(handle))
        temp = attempt(lambda: nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU))
        power = attempt(lambda: nv.nvmlDeviceGetPowerUsage(handle) / 1000.0)
        return DeviceReading(index, util, mem.used if mem else None, mem.total if mem else None, temp, power)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            readings = [self._read(i) for i in range(self.nvml.nvmlDeviceGetCount())]
        except self.nvml.NVMLError as exc:
            logger.warning("NVML read failed: %s", exc)
            return
        yield from families("cuda", readings)


_NPU_ROW1 = re.compile(r"^\|\s*(\d+)\s+\S.*?\|\s*\S+\s*\|\s*([\d.]+|NA)\s+(\d+|NA)\s")
_NPU_ROW2 = re.compile(r"^\|\s*\d+\s*\|\s*\S+\s*\|\s*(\d+|NA)\s+.*?(\d+)\s*/\s*(\d+)\s*\|\s*$")


def parse_npu_smi(text: str) -> list[DeviceReading]:
    """Pure: the two-line-per-device summary of ``npu-smi info`` -> readings (MB -> bytes)."""
    readings: list[DeviceReading] = []
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        m1 = _NPU_ROW1.match(line)
        m2 = _NPU_ROW2.match(lines[i + 1]) if m1 else None
        if not (m1 and m2):
            continue

        def num(s: str) -> float | None:
            return None if s == "NA" else float(s)

        util = num(m2.group(1))
        readings.append(DeviceReading(int(m1.group(1)), None if util is None else util / 100.0,
                                      float(m2.group(2)) * 2**20, float(m2.group(3)) * 2**20,
                                      num(m1.group(3)), num(m1.group(2))))
    return readings


class NpuSmiCollector:
    def __init__(self, binary: str) -> None:
        self.binary = binary

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            out = subprocess.run([self.binary, "info"], capture_output=True, text=True, timeout=5, check=True).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            logger.warning("npu-smi failed: %s", exc)
            return
        yield from families("npu", parse_npu_smi(out))


def device_collector(device: str | None):
    """The collector for a device string (``cuda``, ``cuda:1``, ``npu``...); None on CPU or when unreadable."""
    kind = (device or "cpu").split(":", 1)[0]
    if kind == "cuda":
        return NvmlCollector.open()
    if kind == "npu":
        binary = shutil.which("npu-smi")
        return NpuSmiCollector(binary) if binary else None
    return None
