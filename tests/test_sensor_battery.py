"""The house battery's VE.Direct text protocol, through a real pseudo-terminal."""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
import tty
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from onboard.telemetry.sensors import Sample
from onboard.telemetry.sensors.battery import (
    BatterySensor,
    VEDirectParser,
    block_checksum,
    values_of,
)
from tests.clocks import ManualClock

T0 = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)

# A BMV-712 sends its fields in two checksummed blocks, about once a second.
MAIN = [("PID", "0xA381"), ("V", "12800"), ("VS", "12650"), ("I", "-3150"),
        ("P", "-40"), ("CE", "-24800"), ("SOC", "876"), ("TTG", "245"),
        ("Alarm", "OFF"), ("Relay", "OFF"), ("AR", "0"), ("BMV", "712 Smart"),
        ("FW", "0413"), ("MON", "0")]
HISTORY = [("H1", "-102345"), ("H2", "-24800"), ("H3", "-102345"), ("H4", "3"),
           ("H5", "0"), ("H6", "-2435688"), ("H7", "11863"), ("H8", "14683"),
           ("H9", "3456"), ("H10", "2"), ("H11", "0"), ("H12", "0"), ("H15", "0"),
           ("H16", "0"), ("H17", "1932"), ("H18", "2204")]
HEX_PING = b":154\n"  # a HEX protocol ping answer: outside the text checksum
HEX_GET = b":70010000C8E\n"


def block(fields: list[tuple[str, str]], checksum: int | None = None) -> bytes:
    body = b"".join(b"\r\n" + k.encode() + b"\t" + v.encode() for k, v in fields)
    body += b"\r\nChecksum\t"
    return body + bytes([block_checksum(body) if checksum is None else checksum])


def with_fields(**changes: str) -> list[tuple[str, str]]:
    fields = dict(MAIN)
    fields.update(changes)
    return list(fields.items())


# -- the parser --------------------------------------------------------------------------


def test_checksum_makes_the_block_sum_zero() -> None:
    data = block(MAIN)
    assert sum(data) % 256 == 0
    parser = VEDirectParser()
    blocks = parser.feed(block(HISTORY) + data)  # the first one synchronises
    assert blocks[-1] == dict(MAIN)
    assert parser.stats["blocks"] == 2 and parser.stats["checksum_errors"] == 0


def test_bad_checksum_dropped_and_counted() -> None:
    parser = VEDirectParser()
    good = block(MAIN)
    bad = bytearray(block(with_fields(V="12801")))
    bad[-1] = (bad[-1] + 1) & 0xFF  # wrong checksum byte
    corrupted = bytearray(good)
    corrupted[10] ^= 0x04  # a bit flipped on the wire inside a value
    blocks = parser.feed(good + bytes(bad) + good + bytes(corrupted) + good)
    assert len(blocks) == 3
    assert parser.stats["checksum_errors"] == 2
    assert all(b["V"] == "12800" for b in blocks)


def test_hex_frames_interleaved_are_skipped() -> None:
    parser = VEDirectParser()
    main = block(MAIN)
    cut = main.index(b"\r\nSOC")  # a HEX frame between two fields of a block
    stream = HEX_PING + main + HEX_GET + main[:cut] + HEX_PING + main[cut:] + HEX_GET
    blocks = parser.feed(stream)
    assert blocks == [dict(MAIN), dict(MAIN)]
    assert parser.stats["hex_frames"] == 4 and parser.stats["checksum_errors"] == 0


def test_torn_frames_fed_in_any_pieces() -> None:
    stream = (block(HISTORY) + block(MAIN)) * 5 + HEX_PING + block(MAIN)
    rng = random.Random(7)
    for _ in range(20):
        parser = VEDirectParser()
        got: list[dict[str, str]] = []
        i = 0
        while i < len(stream):
            n = rng.randint(1, 40)
            got += parser.feed(stream[i:i + n])
            i += n
        assert len(got) == 11 and parser.stats["checksum_errors"] == 0


def test_joining_mid_block_is_not_a_checksum_error() -> None:
    parser = VEDirectParser()
    stream = block(MAIN)
    blocks = parser.feed(stream[25:] + stream)
    assert blocks == [dict(MAIN)]
    assert parser.stats["partial"] == 1 and parser.stats["checksum_errors"] == 0


@pytest.mark.parametrize("special", [ord(":"), ord("\r"), ord("\n"), ord("\t"), 0, 255])
def test_checksum_byte_of_any_value(special: int) -> None:
    # Pad a field until the checksum byte is the special value: it must not be taken
    # for a HEX frame start or a line end. Three printable characters reach any value.
    fields, data = MAIN, block(MAIN)
    for pad in itertools.product(range(0x41, 0x7B), repeat=3):
        fields = [*MAIN, ("PAD", bytes(pad).decode())]
        data = block(fields)
        if data[-1] == special:
            break
    assert data[-1] == special
    parser = VEDirectParser()
    assert parser.feed(block(MAIN) + data + block(MAIN)) == [dict(MAIN), dict(fields),
                                                               dict(MAIN)]


def test_random_garbage_never_raises_and_recovers() -> None:
    rng = random.Random(3)
    parser = VEDirectParser()
    noise = bytes(rng.randrange(256) for _ in range(50_000))
    parser.feed(noise)
    assert parser.feed(block(MAIN) + block(MAIN))[-1] == dict(MAIN)


def test_values_and_codes() -> None:
    values, codes = values_of(dict(MAIN))
    assert values == {"voltage_v": 12.8, "current_a": -3.15, "soc_pct": 87.6, "ttg_min": 245}
    assert codes == []
    values, codes = values_of(dict(with_fields(TTG="-1", SOC="---", AR="5", Alarm="ON")))
    assert values == {"voltage_v": 12.8, "current_a": -3.15}  # infinite TTG, unsynced SOC
    assert codes == ["LOW_VOLTAGE", "LOW_SOC", "ALARM"]
    _, codes = values_of({"V": "27100", "I": "12000", "ERR": "33", "CS": "3"})  # a charger
    assert codes == ["ERR_33"]
    assert values_of({"V": "13000"})[1] is None  # nothing that can carry codes


# -- the sensor through a pseudo-terminal -------------------------------------------------


class Device:
    """A VE.Direct device at the master end of a pty: sends what `frames` yields, as
    a real one does, a little at a time. The sensor opens `link` (like a by-id symlink)."""

    def __init__(self, link: Path, frames: Callable[[], Iterator[bytes]],
                 chunk: int = 64, pause_s: float = 0.01) -> None:
        self.link = link
        self.frames = frames
        self.chunk = chunk
        self.pause_s = pause_s
        self.sending = threading.Event()
        self.sending.set()
        self._stop = threading.Event()
        self.master = -1
        self._thread: threading.Thread | None = None
        self.plug()

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # what pyserial sets: no \r -> \n translation
        path = os.ttyname(slave)
        os.close(slave)
        if self.link.is_symlink():
            self.link.unlink()
        self.link.symlink_to(path)
        self.master = master
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def unplug(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        os.close(self.master)

    def _run(self) -> None:
        while not self._stop.is_set():
            for frame in self.frames():
                for i in range(0, len(frame), self.chunk):
                    if self._stop.is_set():
                        return
                    self.sending.wait()
                    try:
                        os.write(self.master, frame[i:i + self.chunk])
                    except OSError:
                        return
                    time.sleep(self.pause_s)


def read_until(sensor: BatterySensor, check: Callable[[Sample], bool],
               timeout_s: float = 10.0) -> Sample:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sample = sensor.read()
        if sample is not None and check(sample):
            return sample
    raise AssertionError(f"no such sample within {timeout_s} s; stats {sensor.stats}")


@pytest.fixture
def link(tmp_path: Path) -> Path:
    return tmp_path / "ttyVE"


def test_reads_a_bmv_through_a_pty(link: Path) -> None:
    device = Device(link, lambda: iter([block(MAIN), HEX_PING, block(HISTORY)]))
    sensor = BatterySensor(str(link), timeout_s=1.0, clock=ManualClock(T0))
    try:
        sample = read_until(sensor, lambda s: sensor.parser.stats["hex_frames"] >= 2)
        assert sample.values == {"voltage_v": 12.8, "current_a": -3.15, "soc_pct": 87.6,
                                 "ttg_min": 245}
        assert sample.codes == [] and sample.ts == T0
        assert sensor.parser.stats["checksum_errors"] == 0
    finally:
        sensor.close()
        device.unplug()


def test_torn_and_corrupted_frames_through_a_pty(link: Path) -> None:
    rng = random.Random(11)

    def frames() -> Iterator[bytes]:
        good = block(with_fields(V="13100"))
        bad = bytearray(block(with_fields(V="99999")))  # corrupted: must never be read
        bad[rng.randrange(2, len(bad) - 1)] ^= 1 << rng.randrange(7)
        yield good
        yield bytes(bad)
        yield HEX_GET
        yield good[: rng.randrange(5, len(good) - 5)]  # torn: the rest never comes
        yield block(HISTORY)

    device = Device(link, frames, chunk=7, pause_s=0.002)  # small pieces: torn reads
    sensor = BatterySensor(str(link), timeout_s=1.0, clock=ManualClock(T0))
    try:
        seen = []
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and sensor.parser.stats["checksum_errors"] < 10:
            sample = sensor.read()
            if sample is not None:
                seen.append(sample.values["voltage_v"])
        assert seen and set(seen) == {13.1}
        assert sensor.parser.stats["checksum_errors"] >= 10  # bad and torn: counted
        assert sensor.parser.stats["blocks"] >= 5
    finally:
        sensor.close()
        device.unplug()


def test_alarms_as_codes_through_a_pty(link: Path) -> None:
    device = Device(link, lambda: iter([block(with_fields(AR="4", Alarm="ON", SOC="285"))]))
    sensor = BatterySensor(str(link), timeout_s=1.0, clock=ManualClock(T0))
    try:
        sample = read_until(sensor, lambda s: True)
        assert sample.codes is not None and set(sample.codes) == {"LOW_SOC", "ALARM"}
        assert sample.values["soc_pct"] == 28.5
    finally:
        sensor.close()
        device.unplug()


def test_unplug_replug_and_silence(link: Path) -> None:
    volts = ["12800"]
    device = Device(link, lambda: iter([block(with_fields(V=volts[0]))]))
    sensor = BatterySensor(str(link), timeout_s=0.5, clock=ManualClock(T0),
                           backoff_initial_s=0.05, backoff_max_s=0.2)
    try:
        read_until(sensor, lambda s: s.values["voltage_v"] == 12.8)
        device.unplug()  # the USB cable pulled: the pty's other end is gone
        assert all(sensor.read() is None for _ in range(5))
        assert sensor.stats["disconnects"] == 1 and not sensor.connected

        volts[0] = "12500"
        device.plug()  # plugged again, as a new device node behind the same link
        sample = read_until(sensor, lambda s: s.values["voltage_v"] == 12.5)
        assert sample.values["voltage_v"] == 12.5
        assert sensor.stats["reconnects"] == 1

        device.sending.clear()  # the device falls silent, port still open
        time.sleep(0.2)
        nones = [sensor.read() for _ in range(3)]
        assert nones == [None, None, None] and sensor.stats["silent"] >= 1
        device.sending.set()
        read_until(sensor, lambda s: True)
    finally:
        sensor.close()
        device.unplug()


def test_no_such_port_never_raises(tmp_path: Path) -> None:
    sensor = BatterySensor(str(tmp_path / "nothing"), timeout_s=0.2, backoff_initial_s=0.01)
    for _ in range(3):
        assert sensor.read() is None
        time.sleep(0.02)
    assert sensor.stats["connect_failures"] == 3
