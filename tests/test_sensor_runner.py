"""Sensor runners: each sensor on its own thread, into a real outbox, whatever it does."""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from medicobus import contract
from medicobus.clock import SystemClock
from medicobus.settings import parse_toml
from onboard.agent import Agent
from onboard.config import OnboardSettings, SensorSettings
from onboard.outbox import Outbox
from onboard.telemetry.fix import Fix
from onboard.telemetry.sampling import Sampler
from onboard.telemetry.sensors import Sample
from onboard.telemetry.sensors.runner import SensorRunner
from onboard.telemetry.sensors.simulated import SimulatedBattery, SimulatedFridge
from tests.clocks import ManualClock


def conf(type_: str = "fridge", extra: str = "") -> SensorSettings:
    return parse_toml(f'vehicle = "bus-1"\n[[sensors]]\ntype = "{type_}"\n'
                      f'port = "/dev/null"\n{extra}', OnboardSettings, "t").sensors[0]


class Exploding:
    """A buggy plugin: its read() raises, against the interface's promise."""

    name = "engine"
    interval_s = 0.01

    def __init__(self) -> None:
        self.stats: dict[str, int] = {"reads": 0}
        self.closed = False

    def read(self) -> Sample | None:
        self.stats["reads"] += 1
        raise RuntimeError("bug in a plugin")

    def close(self) -> None:
        self.closed = True


class Silent:
    name = "battery"
    interval_s = 0.01

    def __init__(self) -> None:
        self.stats: dict[str, int] = {"reads": 0}

    def read(self) -> Sample | None:
        self.stats["reads"] += 1
        return None

    def close(self) -> None:
        pass


class Counting:
    """A fridge whose temperature climbs 0.5 °C a read: every read is news."""

    name = "fridge"
    interval_s = 0.01

    def __init__(self) -> None:
        self.stats: dict[str, int] = {"reads": 0}

    def read(self) -> Sample | None:
        self.stats["reads"] += 1
        return Sample(datetime.now(UTC), {"temp_c": 2.0 + 0.5 * (self.stats["reads"] % 60)})

    def close(self) -> None:
        pass


def readings(outbox: Outbox) -> list[contract.Reading]:
    out = []
    for row in outbox.after(0, 10_000):
        message = contract.parse_uplink(row.payload)
        assert isinstance(message, contract.Reading)
        out.append(message)
    return out


def wait_for(check: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_a_misbehaving_sensor_does_not_stop_the_others(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    clock = SystemClock()
    bad, silent, good = Exploding(), Silent(), Counting()
    runners = [SensorRunner(s, Sampler(s.name, conf(), clock, vehicle="bus-1"), outbox, clock)
               for s in (bad, silent, good)]
    caplog.set_level(logging.WARNING, logger="onboard.telemetry.sensors.runner")
    for r in runners:
        r.start()
    try:
        wait_for(lambda: good.stats["reads"] >= 20 and bad.stats["reads"] >= 20)
        assert all(r.alive for r in runners)
    finally:
        for r in runners:
            r.stop()
    assert not any(r.alive for r in runners) and bad.closed
    assert runners[0].stats["sensor_errors"] == bad.stats["reads"]
    # Logged with its traceback once, not once per read.
    raised = [rec for rec in caplog.records if "raised" in rec.getMessage()]
    assert len(raised) == 1 and raised[0].exc_info is not None
    got = readings(outbox)
    assert got and {r.sensor for r in got} == {"fridge"}
    assert all(r.vehicle == "bus-1" and r.values["temp_c"] is not None for r in got)
    outbox.close()


def test_readings_reach_a_real_outbox_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    outbox = Outbox(path)
    clock = ManualClock(datetime(2025, 3, 4, 8, 0, tzinfo=UTC))
    battery = SimulatedBattery(clock, motion=lambda: False)
    runner = SensorRunner(battery, Sampler("battery", conf("battery"), clock,
                                           vehicle="bus-1"), outbox, clock, interval_s=0.01)
    for _ in range(5):
        runner.step()
        clock.advance(600)  # consultations: the battery drains
    outbox.close()
    # Read back from the file, as the link (or the next boot) would.
    rows = sqlite3.connect(path).execute(
        "SELECT kind, payload FROM outbox ORDER BY seq").fetchall()
    assert rows and all(kind == "reading" for kind, _ in rows)
    socs = [json.loads(p)["values"].get("soc_pct") for _, p in rows]
    assert socs[0] is not None and socs[-1] is not None and socs[-1] < socs[0]


def test_stale_reading_when_a_sensor_falls_silent(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    clock = ManualClock(datetime(2025, 3, 4, 8, 0, tzinfo=UTC))
    answers: list[Sample | None] = [Sample(clock.now(), {"temp_c": 4.5})]

    class Flaky:
        name = "fridge"
        interval_s = 30.0
        stats: dict[str, int] = {}

        def read(self) -> Sample | None:
            return answers.pop(0) if answers else None

        def close(self) -> None:
            pass

    runner = SensorRunner(Flaky(), Sampler("fridge", conf(extra="stale_after_s = 90"), clock,
                                           vehicle="bus-1"), outbox, clock)
    for _ in range(6):
        runner.step()
        clock.advance(30)
    got = readings(outbox)
    assert [r.values for r in got] == [{"temp_c": 4.5}, {"temp_c": None}]
    assert got[1].flags == {"temp_c": "stale"}
    outbox.close()


def test_simulated_fridge_excursion_above_8_for_about_15_minutes() -> None:
    clock = ManualClock(datetime(2025, 3, 4, 6, 0, tzinfo=UTC))  # 07:00 in Paris
    fridge = SimulatedFridge(clock)
    above = []
    for _ in range(12 * 60):  # 07:00 -> 19:00, a reading a minute
        sample = fridge.read()
        assert 2.0 <= sample.values["temp_c"] <= 10.5
        if sample.values["temp_c"] > 8.0:
            above.append(clock.now())
        clock.advance(60)
    assert 14 <= len(above) <= 18  # ~15 minutes, in one episode
    assert above[-1] - above[0] == timedelta(minutes=len(above) - 1)
    assert above[0] > datetime(2025, 3, 4, 9, 30, tzinfo=UTC)  # 10:30 Paris
    assert above[-1] < datetime(2025, 3, 4, 10, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NoGps:
    def read(self) -> Fix | None:
        return None

    def close(self) -> None:
        pass


def test_agent_runs_configured_sensors_and_stops_them(tmp_path: Path) -> None:
    w1 = tmp_path / "w1"
    (w1 / "28-000000000aaa").mkdir(parents=True)
    (w1 / "28-000000000aaa" / "w1_slave").write_text(
        "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=4562\n")
    settings = parse_toml(f'''
vehicle = "bus-1"
data_dir = "{tmp_path / 'data'}"
[broker]
port = {free_port()}
[gps]
poll_s = 0.05
[[sensors]]
type = "fridge"
w1_dir = "{w1}"
interval_s = 0.05
[[sensors]]
type = "simulated-battery"
interval_s = 0.05
[[sensors]]
type = "battery"
name = "house-battery"
port = "{tmp_path / 'no-such-tty'}"
interval_s = 0.05
''', OnboardSettings, "t")
    agent = Agent(settings, NoGps(), SystemClock())
    assert [r.name for r in agent.sensors] == ["fridge", "battery", "house-battery"]
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: {r.sensor for r in readings(agent.outbox)} >= {"fridge"}
                 and len(agent.sensors) == 3 and all(r.alive for r in agent.sensors))
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert not any(r.alive for r in agent.sensors)  # stopped in run()'s finally
    rows = sqlite3.connect(tmp_path / "data" / "outbox.db").execute(
        "SELECT payload FROM outbox WHERE kind = 'reading'").fetchall()
    sensors = {json.loads(p)["sensor"] for (p,) in rows}
    assert "fridge" in sensors


def test_simulated_engine_runs_while_the_bus_moves() -> None:
    from onboard.telemetry.sensors.simulated import SimulatedEngine

    clock = ManualClock(datetime(2025, 3, 4, 8, 0, tzinfo=UTC))
    moving = [False]
    engine = SimulatedEngine(clock, motion=lambda: moving[0])
    stopped = engine.read().values
    assert set(stopped) == {"battery_v", "rpm", "speed_kmh"}
    assert stopped["rpm"] == 0 and stopped["speed_kmh"] == 0
    moving[0] = True
    for _ in range(30):
        clock.advance(60)
        sample = engine.read()
    assert set(sample.values) == {"speed_kmh", "rpm", "coolant_c", "fuel_pct", "battery_v"}
    assert 80 <= sample.values["coolant_c"] <= 95 and sample.codes == []
