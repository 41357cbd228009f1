"""The InfluxDB export path against a real server speaking `/api/v2/write`
(VictoriaMetrics): points arrive in batches, survive an outage and a restart of the
ground, none lost and none twice, and submitting never waits for the server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ground.influx import InfluxExporter, InfluxSettings, to_lines
from ground.store import Store
from medicobus import contract
from medicobus.clock import SystemClock
from tests.victoria import Victoria

VEHICLE = "perche-1"
# VictoriaMetrics keeps points near the present: the tests write today's times.
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[Victoria]:
    server = Victoria(tmp_path / "victoria").start()
    yield server
    server.stop()


def settings(server_url: str, tmp_path: Path, **extra: object) -> InfluxSettings:
    return InfluxSettings.model_validate({
        "url": server_url, "org": "medicobus", "bucket": "telemetry", "token": "secret",
        "retry_initial_s": 0.05, "retry_max_s": 0.5, "timeout_s": 2,
        "spool": tmp_path / "spool.db", **extra})  # fmt: skip


def fridge(i: int, temp: float | None = None) -> contract.Reading:
    value = 4.0 + (i % 10) / 10 if temp is None else temp
    return contract.Reading(vehicle=VEHICLE, ts=START + timedelta(seconds=i), sensor="fridge",
                            values={"temp_c": value})


def wait_until(predicate: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_line_protocol_leaves_flagged_values_out() -> None:
    r = contract.Reading(vehicle=VEHICLE, ts=START, sensor="engine",
                         values={"coolant_c": 91.0, "rpm": 1450, "battery_v": None},
                         flags={"battery_v": "out_of_range"}, codes=["P0301", "P0420"])
    p = contract.Position(vehicle=VEHICLE, ts=START, lat=48.38, lon=0.67, speed=12.5)
    status = contract.Status(vehicle=VEHICLE, ts=START, state="online")
    all_flagged = contract.Reading(vehicle=VEHICLE, ts=START, sensor="fridge",
                                   values={"temp_c": None}, flags={"temp_c": "crc"})
    lines = to_lines([r, p, status, all_flagged])
    ns = int(START.timestamp()) * 10**9
    assert lines[0] == ("medicobus_reading,sensor=engine,vehicle=perche-1 "
                        'codes="P0301,P0420",coolant_c=91,flags="battery_v=out_of_range",'
                        f"rpm=1450 {ns}")  # no `i`: floats
    assert lines[1] == f"medicobus_position,vehicle=perche-1 lat=48.38,lon=0.67,speed=12.5 {ns}"
    # A reading whose every value is flagged still records why, never a false value.
    assert lines[2] == f'medicobus_reading,sensor=fridge,vehicle=perche-1 flags="temp_c=crc" {ns}'
    assert len(lines) == 3  # the status is not telemetry


def test_readings_and_positions_arrive(victoria: Victoria, tmp_path: Path) -> None:
    store = Store(tmp_path / "ground.db")
    exporter = InfluxExporter(settings(victoria.url, tmp_path, batch_size=7), store,
                              SystemClock())
    exporter.start()
    try:
        readings = [fridge(i) for i in range(50)]
        positions = [contract.Position(vehicle=VEHICLE, ts=START + timedelta(seconds=i),
                                       lat=48.0 + i / 1000, lon=0.5, speed=10.0 + i)
                     for i in range(20)]
        exporter.submit([*readings, *positions])
        assert exporter.flush(20), exporter.last_error
        got = victoria.samples("medicobus_reading_temp_c", vehicle=VEHICLE, sensor="fridge")
        assert got == [(int(r.ts.timestamp() * 1000), r.values["temp_c"]) for r in readings]
        speeds = victoria.samples("medicobus_position_speed", vehicle=VEHICLE)
        assert [v for _, v in speeds] == [10.0 + i for i in range(20)]
        assert len(victoria.samples("medicobus_position_lat", vehicle=VEHICLE)) == 20
        assert exporter.stats["written"] == 70 and exporter.stats["batches"] >= 10
        assert exporter.stats["pending"] == 0
    finally:
        exporter.stop()
        store.close()


def test_an_outage_loses_nothing_and_duplicates_nothing(victoria: Victoria,
                                                        tmp_path: Path) -> None:
    store = Store(tmp_path / "ground.db")
    exporter = InfluxExporter(settings(victoria.url, tmp_path), store, SystemClock())
    exporter.start()
    try:
        exporter.submit([fridge(i) for i in range(0, 100)])
        assert exporter.flush(20), exporter.last_error
        victoria.stop()
        # The server is down: submitting must still be immediate (ingest never waits).
        for chunk in range(100, 400, 50):
            began = time.monotonic()
            exporter.submit([fridge(i) for i in range(chunk, chunk + 50)])
            assert time.monotonic() - began < 0.5
        wait_until(lambda: exporter.stats["failures"] >= 2)
        assert exporter.stats["pending"] == 300
        assert not exporter.flush(0.3)
        victoria.start()  # same port, same data
        assert exporter.flush(30), exporter.last_error
    finally:
        exporter.stop()
        store.close()
    got = victoria.samples("medicobus_reading_temp_c", vehicle=VEHICLE, sensor="fridge")
    stamps = [t for t, _ in got]
    expected = [int(fridge(i).ts.timestamp() * 1000) for i in range(400)]
    assert stamps == expected  # every point, each exactly once, in order


def test_the_spool_survives_a_restart_of_the_ground(victoria: Victoria,
                                                    tmp_path: Path) -> None:
    """Points spooled while the server was down are sent by the next process."""
    victoria.stop()
    store = Store(tmp_path / "ground.db")
    config = settings(victoria.url, tmp_path, spool=None)  # default: beside the database
    first = InfluxExporter(config, store, SystemClock())
    first.start()
    first.submit([fridge(i) for i in range(60)])
    wait_until(lambda: first.stats["failures"] >= 1)
    first.stop()
    assert (tmp_path / "ground-influx-spool.db").exists()

    victoria.start()
    second = InfluxExporter(config, store, SystemClock())
    assert second.stats["pending"] == 60
    second.start()
    try:
        assert second.flush(30), second.last_error
    finally:
        second.stop()
        store.close()
    got = victoria.samples("medicobus_reading_temp_c", vehicle=VEHICLE, sensor="fridge")
    assert len(got) == 60 and len({t for t, _ in got}) == 60


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="url must start"):
        InfluxSettings(url="localhost:8086", org="o", bucket="b")
    with pytest.raises(ValueError, match="not both"):
        InfluxSettings(url="http://x", org="o", bucket="b", token="t",
                       token_file=Path("/etc/t"))


def test_the_grafana_dashboard_reads_what_the_exporter_writes() -> None:
    import json

    from ground.alerts import DEFAULT_RULES, ThresholdRule

    path = Path(__file__).resolve().parents[1] / "config" / "grafana" / "medicobus-dashboard.json"
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    queries = [t["query"] for p in dashboard["panels"] for t in p["targets"]]
    assert all('from(bucket: "${bucket}")' in q and '"${vehicle}"' in q for q in queries)
    measurements = {"medicobus_reading", "medicobus_position"}
    assert all(any(f'r._measurement == "{m}"' in q for m in measurements) for q in queries)
    # Each sensor rule's quantity is charted, with the rule's thresholds drawn.
    fridge = next(p for p in dashboard["panels"] if p["title"].startswith("Réfrigérateur à"))
    assert [s["value"] for s in fridge["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [
        None, 2, 8]
    for rule in DEFAULT_RULES:
        if isinstance(rule, ThresholdRule):
            assert any(f'r.sensor == "{rule.sensor}" and r._field == "{rule.quantity}"' in q
                       for q in queries), rule.id
