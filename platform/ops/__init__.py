"""AIOps for the suite (``npusuite ops``): read Prometheus, forecast, flag, rank root causes, advise scaling.

Pure core (numpy arrays and typed records): :mod:`.forecast`, :mod:`.anomalies`, :mod:`.topology`,
:mod:`.root_cause`, :mod:`.capacity`.  I/O apart: :mod:`.prometheus_api` (HTTP client),
:mod:`.report` (PNG), :mod:`.scaling` (Helm values / ``kubectl`` command), :mod:`.tsdb` (a real
Prometheus server over a backfilled TSDB, for tests and the bench), :mod:`.cli`.
"""
