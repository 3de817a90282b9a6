"""Level a: process, host and disk metrics for every long-running process.

prometheus-client's own collectors cover what they can: ``ProcessCollector``
(namespace ``npusuite``: CPU seconds, resident memory, open files),
``PlatformCollector`` and ``GCCollector``.  Custom collectors add the rest:
:class:`GcPauses` (each collection's duration through ``gc.callbacks``),
:class:`HostCollector` (host CPU share and memory through psutil, free and
total bytes of the file system of each named state folder).  Everything is
read at scrape time, so nothing runs on the hot path except the GC callback.
Device metrics are :mod:`npusuite.platform.observability.devices`.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import psutil
from prometheus_client import GCCollector, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

from npusuite.platform.observability import names as N

logger = logging.getLogger(__name__)

_GC_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)


def existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest existing parent (a state folder may not exist before the first write)."""
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


class HostCollector:
    """Host CPU share (since the previous scrape), memory, and disk space of the given state folders."""

    def __init__(self, folders: Mapping[str, Path] | None = None) -> None:
        self.folders = dict(folders or {})
        psutil.cpu_percent(None)  # the first call only starts the interval

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(N.HOST_CPU_USAGE_RATIO, "Host CPU busy share since the previous scrape.",
                                value=psutil.cpu_percent(None) / 100.0)
        vm = psutil.virtual_memory()
        yield GaugeMetricFamily(N.HOST_MEMORY_TOTAL_BYTES, "Host memory.", value=vm.total)
        yield GaugeMetricFamily(N.HOST_MEMORY_AVAILABLE_BYTES, "Host memory available.", value=vm.available)
        if not self.folders:
            return
        free = GaugeMetricFamily(N.HOST_DISK_FREE_BYTES, "Free bytes on the file system of each state folder.",
                                 labels=["folder"])
        total = GaugeMetricFamily(N.HOST_DISK_TOTAL_BYTES, "Size of the file system of each state folder.",
                                  labels=["folder"])
        for role, path in self.folders.items():
            try:
                usage = psutil.disk_usage(str(existing_ancestor(path)))
            except OSError as exc:
                logger.debug("disk usage of %s folder unreadable: %s", role, exc)
                continue
            free.add_metric([role], usage.free)
            total.add_metric([role], usage.total)
        yield free
        yield total


class GcPauses:
    """Duration of every garbage collection, per generation, from ``gc.callbacks`` (remove with :meth:`close`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.histogram = Histogram(N.PROCESS_GC_PAUSE_SECONDS, "Duration of each garbage collection.",
                                   ["generation"], buckets=_GC_BUCKETS, registry=registry)
        self._children = [self.histogram.labels(str(g)) for g in range(3)]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            self._children[min(int(info.get("generation", 0)), 2)].observe(time.perf_counter() - self._started)
            self._started = 0.0

    def close(self) -> None:
        try:
            gc.callbacks.remove(self._callback)
        except ValueError:
            pass


def register_infrastructure(registry: CollectorRegistry, folders: Mapping[str, Path] | None = None,
                            device: str | None = None) -> GcPauses:
    """Register every level-a collector on ``registry``: process, Python platform and GC, GC pauses, host
    and the folders' disks, and the device's when ``device`` is ``cuda``/``npu`` and readable.  Returns the
    GC pause timer (call its ``close`` when the registry is dropped: it hooks ``gc.callbacks``)."""
    from npusuite.platform.observability.devices import device_collector

    ProcessCollector(namespace=N.PREFIX, registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(HostCollector(folders))
    collector = device_collector(device)
    if collector is not None:
        registry.register(collector)
    return GcPauses(registry)
