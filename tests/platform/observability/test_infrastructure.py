import gc

from prometheus_client import CollectorRegistry

from npusuite.platform.observability import names as N
from npusuite.platform.observability.devices import DeviceReading, device_collector, families, parse_npu_smi
from npusuite.platform.observability.infrastructure import register_infrastructure

NPU_SMI = """\
+------------------------------------------------------------------------------------------------+
| npu-smi 23.0.rc3                 Version: 23.0.rc3                                             |
+---------------------------+---------------+----------------------------------------------------+
| NPU   Name                | Health        | Power(W)    Temp(C)           Hugepages-Usage(page)|
| Chip                      | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)        |
+===========================+===============+====================================================+
| 0     910B3               | OK            | 93.6        40                0    / 0             |
| 0                         | 0000:C1:00.0  | 12          0    / 0          3378 / 65536         |
+===========================+===============+====================================================+
| 1     910B3               | OK            | NA          41                0    / 0             |
| 0                         | 0000:C2:00.0  | NA          0    / 0          0    / 65536         |
+===========================+===============+====================================================+
"""


def test_process_host_gc_and_disk_metrics(tmp_path):
    r = CollectorRegistry()
    gcp = register_infrastructure(r, {"state": tmp_path / "not-yet" / "state"}, device="cpu")
    try:
        gc.collect()
        assert r.get_sample_value(N.PROCESS_RESIDENT_MEMORY_BYTES) > 0
        assert r.get_sample_value(N.PROCESS_OPEN_FDS) > 0
        assert r.get_sample_value(N.PROCESS_GC_PAUSE_SECONDS + "_count", {"generation": "2"}) >= 1
        assert 0.0 <= r.get_sample_value(N.HOST_CPU_USAGE_RATIO) <= 1.0
        assert 0 < r.get_sample_value(N.HOST_MEMORY_AVAILABLE_BYTES) <= r.get_sample_value(N.HOST_MEMORY_TOTAL_BYTES)
        free = r.get_sample_value(N.HOST_DISK_FREE_BYTES, {"folder": "state"})  # nearest existing parent
        assert 0 < free <= r.get_sample_value(N.HOST_DISK_TOTAL_BYTES, {"folder": "state"})
        # CPU: no device series at all (absent, not zero)
        assert r.get_sample_value(N.DEVICE_UTILIZATION_RATIO, {"kind": "cuda", "index": "0"}) is None
        assert not any(m.name.startswith("npusuite_device_") for m in r.collect())
    finally:
        gcp.close()
    assert gcp._callback not in gc.callbacks


def test_cpu_and_missing_npu_smi_have_no_device_collector(monkeypatch):
    assert device_collector(None) is None and device_collector("cpu") is None
    monkeypatch.setenv("PATH", "/nonexistent")
    assert device_collector("npu:0") is None


def test_npu_smi_table_is_parsed_and_na_left_out():
    readings = parse_npu_smi(NPU_SMI)
    assert readings[0] == DeviceReading(0, 0.12, 3378 * 2**20, 65536 * 2**20, 40.0, 93.6)
    assert readings[1].utilization_ratio is None and readings[1].power_watts is None
    fams = {f.name: f for f in families("npu", readings)}
    assert [s.labels for s in fams[N.DEVICE_POWER_WATTS].samples] == [{"kind": "npu", "index": "0"}]
    assert len(fams[N.DEVICE_TEMPERATURE_CELSIUS].samples) == 2
    assert parse_npu_smi("garbage\n| not | a | table |\n") == []
