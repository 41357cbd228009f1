"""The engine sensor against ELM327-emulator: a real third-party ELM327 on a pty.

The emulator runs as a subprocess in its batch mode (`python -m elm -s car -b FILE`): it
writes the pseudo-terminal it serves as the first line of FILE and takes interpreter
commands on its standard input, where we set its stored trouble codes and switch its
scenario. The sensor opens a symlink to that pty, as a bus opens /dev/serial/by-id/...,
so that a restarted emulator (a new pty) is the same adapter plugged in again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from medicobus.settings import parse_toml
from onboard.config import OnboardSettings
from onboard.telemetry.sampling import Sampler
from onboard.telemetry.sensors import Sample, build_sensor
from onboard.telemetry.sensors.engine import EngineSensor
from tests.clocks import ManualClock

T0 = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)
QUANTITIES = {"speed_kmh", "rpm", "coolant_c", "fuel_pct", "battery_v"}


class Emulator:
    def __init__(self, workdir: Path, link: Path) -> None:
        self.workdir = workdir
        self.link = link
        self.proc: subprocess.Popen[str] | None = None
        self.runs = 0

    def start(self, scenario: str = "car", dtcs: list[str] | None = None) -> None:
        self.runs += 1
        out = self.workdir / f"elm-{self.runs}.out"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "elm", "-s", scenario, "-b", str(out)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            text=True, cwd=self.workdir,
        )
        if dtcs is not None:
            self.set_dtcs(dtcs)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            first = out.read_text().split("\n", 1)[0].strip() if out.exists() else ""
            if first.startswith("/dev/"):
                break
            assert self.proc.poll() is None, "the emulator exited"
            time.sleep(0.05)
        else:
            raise AssertionError("the emulator did not say which pty it serves")
        if self.link.is_symlink():
            self.link.unlink()
        self.link.symlink_to(first)

    def command(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def set_dtcs(self, dtcs: list[str]) -> None:
        # The emulator's 'car' scenario answers mode 03 from elm.obd_message.DTC_STORED.
        # On CAN (ISO 15765-4) a real ECU's answer starts with the number of codes, which
        # python-OBD uses to trim the frame; the emulator leaves it out, so its list gets
        # that count byte first.
        stored = [f"{len(dtcs):02X}", *dtcs] if dtcs else []
        self.command(f"import elm.obd_message as om; om.DTC_STORED[:] = {stored!r}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)  # pulled out mid-stream, no goodbye
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    emu = Emulator(tmp_path, tmp_path / "ttyOBD")
    yield emu
    emu.stop()


def read_until(sensor: EngineSensor, check: Callable[[Sample], bool],
               timeout_s: float = 20.0) -> Sample:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sample = sensor.read()
        if sample is not None and check(sample):
            return sample
        time.sleep(0.05)
    raise AssertionError(f"no such sample within {timeout_s} s; stats {sensor.stats}")


def test_reads_the_car_and_its_trouble_codes(emulator: Emulator) -> None:
    emulator.start("car", dtcs=["0143", "0196"])  # P0143, P0196
    sensor = EngineSensor(str(emulator.link), timeout_s=1.0, dtc_interval_s=0.0,
                          clock=ManualClock(T0))
    try:
        sample = read_until(sensor, lambda s: True)
        assert set(sample.values) == QUANTITIES
        assert 0 <= sample.values["speed_kmh"] <= 250
        assert 0 <= sample.values["rpm"] <= 10_000
        assert -40 <= sample.values["coolant_c"] <= 150
        assert 0 <= sample.values["fuel_pct"] <= 100
        assert 10 <= sample.values["battery_v"] <= 16
        assert sample.codes == ["P0143", "P0196"]

        conf = parse_toml('vehicle = "bus-1"\n[[sensors]]\ntype = "engine"\n'
                          f'port = "{emulator.link}"\n', OnboardSettings, "t").sensors[0]
        reading = Sampler("engine", conf, ManualClock(T0), vehicle="bus-1").feed(sample)
        assert reading is not None and reading.codes == ["P0143", "P0196"]
        assert set(reading.values) == QUANTITIES and reading.flags == {}

        emulator.set_dtcs([])  # repaired and cleared at the garage
        sample = read_until(sensor, lambda s: s.codes == [], timeout_s=5)
        assert set(sample.values) == QUANTITIES
        assert sensor.stats["connects"] == 1 and sensor.stats["errors"] == 0
    finally:
        sensor.close()


def test_rides_through_the_adapter_killed_and_restarted(emulator: Emulator) -> None:
    emulator.start("car")
    sensor = EngineSensor(str(emulator.link), timeout_s=1.0, clock=ManualClock(T0),
                          backoff_initial_s=0.1, backoff_max_s=0.5)
    try:
        read_until(sensor, lambda s: True)
        emulator.kill()
        started = time.monotonic()
        assert sensor.read() is None
        assert time.monotonic() - started < 5  # neither hangs nor raises
        assert sensor.stats["disconnects"] == 1 and not sensor.connected
        for _ in range(3):
            assert sensor.read() is None  # no adapter: cheap, backing off
        emulator.start("car", dtcs=["0301"])
        sample = read_until(sensor, lambda s: True)
        assert set(sample.values) == QUANTITIES and sample.codes == ["P0301"]
        assert sensor.stats["reconnects"] == 1 and sensor.stats["errors"] == 0
    finally:
        sensor.close()


def test_ignition_off_then_on(emulator: Emulator) -> None:
    # 'engineoff': the adapter answers, the car does not ("UNABLE TO CONNECT", "NO DATA").
    emulator.start("engineoff")
    sensor = EngineSensor(str(emulator.link), timeout_s=1.0, clock=ManualClock(T0),
                          car_retry_s=0.5)
    try:
        sample = read_until(sensor, lambda s: True)
        # The adapter's own voltage reading, and the engine said to be stopped (not left at
        # the last speed seen, which the ground would take as still driving).
        assert set(sample.values) == {"battery_v", "rpm", "speed_kmh"}
        assert sample.values["rpm"] == 0 and sample.values["speed_kmh"] == 0
        assert sample.codes is None  # no car: no codes known, none cleared
        assert sensor.stats["ignition_off"] == 1 and not sensor.car_connected
        emulator.command("scenario car")  # ignition on
        sample = read_until(sensor, lambda s: set(s.values) == QUANTITIES)
        assert sensor.car_connected and sample.codes == []
    finally:
        sensor.close()


def open_pty(link: Path) -> int:
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    os.close(slave)
    link.symlink_to(path)
    return master


def test_silent_adapter_costs_bounded_time(tmp_path: Path) -> None:
    link = tmp_path / "ttySilent"
    master = open_pty(link)  # plugged, powered, never answers
    sensor = EngineSensor(str(link), baudrate=38400, timeout_s=0.5, clock=ManualClock(T0))
    try:
        started = time.monotonic()
        assert sensor.read() is None
        assert time.monotonic() - started < 8
        assert sensor.stats["silent"] >= 1 and sensor.stats["connect_failures"] == 1
    finally:
        sensor.close()
        os.close(master)


def test_garbage_talking_adapter(tmp_path: Path) -> None:
    link = tmp_path / "ttyNoise"
    master = open_pty(link)
    stop = threading.Event()

    def babble() -> None:  # answers anything with noise and never a '>' prompt
        os.set_blocking(master, False)
        while not stop.is_set():
            # Nothing to read, or EIO while no one has the port open: babble on.
            with contextlib.suppress(OSError):
                os.read(master, 1024)
            with contextlib.suppress(OSError):
                os.write(master, bytes(range(1, 62)) * 4)
            time.sleep(0.005)

    thread = threading.Thread(target=babble, daemon=True)
    thread.start()
    sensor = EngineSensor(str(link), baudrate=38400, timeout_s=0.5, answer_max_s=3.0,
                          answer_max_bytes=4096, clock=ManualClock(T0))
    try:
        started = time.monotonic()
        assert sensor.read() is None
        assert time.monotonic() - started < 10
        assert sensor.stats["garbage"] >= 1 and sensor.stats["errors"] == 0
    finally:
        sensor.close()
        stop.set()
        thread.join(2)
        os.close(master)


def test_no_such_port(tmp_path: Path) -> None:
    settings = parse_toml('vehicle = "bus-1"\n[[sensors]]\ntype = "engine"\n'
                          f'port = "{tmp_path / "none"}"\ntimeout_s = 0.5\n',
                          OnboardSettings, "t")
    sensor = build_sensor(settings.sensors[0], ManualClock(T0))
    assert isinstance(sensor, EngineSensor) and sensor.name == "engine"
    assert sensor.read() is None and sensor.read() is None  # the second one backs off
    assert sensor.stats["connect_failures"] == 1
