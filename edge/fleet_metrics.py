"""The fleet server's view of its boxes as Prometheus series: when each box last checked in.

An edge box behind NAT cannot be scraped by the data centre's Prometheus, but it does check in
with the fleet server (heartbeats, update reports).  ``npusuite_fleet_device_last_seen_timestamp_seconds``
(one series per enrolled device, read from the fleet store at scrape time) lets the
``EdgeBoxNotCheckingIn`` alert judge those boxes too: ``time() - last_seen > 600``.  A device that
never checked in has no series.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily

from npusuite.edge.fleet_store import FleetStore
from npusuite.platform.observability import names as N


class LastSeenCollector:
    """Reads ``last_seen_s`` per device from the store on each scrape (fleets are hundreds of boxes, one query)."""

    def __init__(self, store: FleetStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(N.FLEET_DEVICE_LAST_SEEN, "When each enrolled box last checked in with the fleet "
                                   "server (Unix time).", labels=["device"])
        for device in self.store.devices():
            if device["last_seen_s"] is not None:
                family.add_metric([device["id"]], float(device["last_seen_s"]))
        yield family
