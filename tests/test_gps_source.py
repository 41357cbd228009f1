"""GpsdSource against a real gpsd fed by gpsfake, and against servers that misbehave."""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from onboard.telemetry.fix import Fix
from onboard.telemetry.gps import UERE_95_M, GpsdSource, parse_gpsd_time
from tests.brokers import free_port
from tests.gpsfake import GpsFake

pytestmark = pytest.mark.timeout(60)

T0 = datetime(2024, 3, 4, 8, 0, 0, tzinfo=UTC)


def drive(n: int = 600, acc: float = 10.0) -> list[Fix]:
    """A bus heading north-east at 15 m/s, one fix a second."""
    return [
        Fix(T0 + timedelta(seconds=i), 48.38 + i * 1e-4, 0.67 + i * 1e-4, mode=3,
            speed=15.0, heading=37.5, acc=acc)
        for i in range(n)
    ]


def wait_for(source: GpsdSource, ok: Callable[[Fix | None], bool],
              within_s: float = 10.0) -> Fix | None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        fix = source.read()
        if ok(fix):
            return fix
        time.sleep(0.05)
    raise AssertionError(f"no matching reading within {within_s} s; stats {source.stats}")


def has_fix(fix: Fix | None) -> bool:
    return fix is not None and fix.has_fix


def timed_read(source: GpsdSource) -> tuple[Fix | None, float]:
    t = time.monotonic()
    fix = source.read()
    return fix, time.monotonic() - t


def test_fixes_come_through_gpsd(tmp_path: Path) -> None:
    fixes = drive()
    sent = {f.ts: f for f in fixes}
    with GpsFake(tmp_path, fixes, cycle_s=0.02) as fake:
        source = GpsdSource("127.0.0.1", fake.port, timeout_s=2.0)
        first = wait_for(source, has_fix)
        assert first is not None
        seen = [first]
        for _ in range(10):
            fix = source.read()
            assert fix is not None
            seen.append(fix)
            time.sleep(0.05)
        source.close()
    assert all(f.has_fix for f in seen)
    for fix in seen:
        assert fix.ts.tzinfo is not None and fix.ts in sent
        want = sent[fix.ts]
        assert fix.lat == pytest.approx(want.lat, abs=1e-7)
        assert fix.lon == pytest.approx(want.lon, abs=1e-7)
        assert fix.speed == pytest.approx(15.0, abs=0.01)
        assert fix.heading == pytest.approx(37.5, abs=0.1)
        assert fix.mode == 3
    # nmea.py's sky -> gpsd's epx/epy; gpsd needs one full GSV set first, so the very
    # first fixes may come without them
    assert [f.acc for f in seen[-5:]] == [pytest.approx(10.0, rel=0.06)] * 5
    assert len({f.ts for f in seen}) > 3  # the fixes move on
    assert source.stats["fixes"] == len(seen)


def test_no_fix_yet_is_a_mode_0_or_1_fix(tmp_path: Path) -> None:
    searching = [Fix(T0 + timedelta(seconds=i), math.nan, math.nan, mode=1) for i in range(60)]
    with GpsFake(tmp_path, searching, cycle_s=0.02) as fake:
        source = GpsdSource("127.0.0.1", fake.port, timeout_s=2.0)
        readings = [source.read() for _ in range(15)]
        source.close()
    assert all(r is not None for r in readings)
    assert all(r.mode < 2 and math.isnan(r.lat) and math.isnan(r.lon)
               for r in readings if r is not None)
    assert source.stats["no_fix"] == 15 and source.stats["fixes"] == 0


def test_gpsd_not_running_returns_none_fast_and_backs_off(
        caplog: pytest.LogCaptureFixture) -> None:
    source = GpsdSource("127.0.0.1", free_port(), timeout_s=1.0, backoff_initial_s=0.2)
    caplog.set_level(logging.DEBUG, logger="onboard.telemetry.gps")
    t = time.monotonic()
    readings = []
    while time.monotonic() - t < 1.5:
        fix, took = timed_read(source)
        readings.append(fix)
        assert took < 0.5
        time.sleep(0.01)
    assert readings and all(r is None for r in readings)
    # 0.2, 0.4, 0.8 s backoff: a handful of attempts, not one per read
    assert 2 <= source.stats["connect_failures"] <= 5 < len(readings)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()


def test_gpsd_stopped_and_restarted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="onboard.telemetry.gps")
    fake = GpsFake(tmp_path, drive(), cycle_s=0.02).start()
    try:
        source = GpsdSource("127.0.0.1", fake.port, timeout_s=2.0, backoff_initial_s=0.2)
        wait_for(source, has_fix)
        fake.stop()
        for _ in range(10):
            fix, took = timed_read(source)
            assert fix is None and took < 0.5
            time.sleep(0.1)
        fake.start()
        wait_for(source, has_fix, within_s=15)
        assert source.stats["reconnects"] >= 1 and source.stats["disconnects"] >= 1
        source.close()
    finally:
        fake.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unavailable" in m for m in messages) == 1
    assert sum("back after" in m for m in messages) == 1


class FakeServer:
    """A TCP server on a free port; `handle(conn)` runs in a thread for each client."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self.handle = handle
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.stopping = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.handle(conn)

    def close(self) -> None:
        self.stopping.set()
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[socket.socket], None]], FakeServer]]:
    servers: list[FakeServer] = []

    def start(handle: Callable[[socket.socket], None]) -> FakeServer:
        servers.append(FakeServer(handle))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


# What gpsd says on connection, then in answer to ?WATCH (its devices, then the watch).
HANDSHAKE = (
    b'{"class":"VERSION","release":"3.22","rev":"3.22","proto_major":3,"proto_minor":14}\n'
)
WATCH = (
    b'{"class":"DEVICES","devices":[{"class":"DEVICE","path":"/dev/ttyACM0"}]}\n'
    b'{"class":"WATCH","enable":true,"json":true}\n'
)
NO_DEVICE = b'{"class":"DEVICES","devices":[]}\n{"class":"WATCH","enable":true,"json":true}\n'


def silent(conn: socket.socket) -> None:
    time.sleep(30)  # accept, then never say a word


def answers_handshake_then_hangs(conn: socket.socket) -> None:
    conn.sendall(HANDSHAKE)
    conn.recv(1024)
    conn.sendall(WATCH)
    time.sleep(30)


@pytest.mark.parametrize("handler", [silent, answers_handshake_then_hangs])
def test_hung_gpsd_read_returns_none_within_timeout(
        serve: Callable[[Callable[[socket.socket], None]], FakeServer],
        handler: Callable[[socket.socket], None]) -> None:
    server = serve(handler)
    source = GpsdSource("127.0.0.1", server.port, timeout_s=1.0, backoff_initial_s=0.1)
    for _ in range(2):
        fix, took = timed_read(source)
        assert fix is None and took < 1.6
        time.sleep(0.15)
    assert source.stats["timeouts"] >= 1
    source.close()


def junk_lines(conn: socket.socket) -> None:
    conn.sendall(b"\x00\xffthis is not gpsd\r\n$GPGGA,garbage*00\n" * 3)
    time.sleep(30)


def handshake_then_unexpected_json(answer: bytes,
                                   watch: bytes = WATCH) -> Callable[[socket.socket], None]:
    """gpsd's greeting and its answer to ?WATCH, then `answer` streamed every 0.1 s."""
    def handle(conn: socket.socket) -> None:
        conn.sendall(HANDSHAKE)
        conn.recv(1024)
        conn.sendall(watch)
        for _ in range(300):
            conn.sendall(answer)
            time.sleep(0.1)

    return handle


@pytest.mark.parametrize("handler", [
    junk_lines,
    handshake_then_unexpected_json(b"not json at all\n"),
    handshake_then_unexpected_json(b'{"class":"TPV","mode":3}\n'),
    handshake_then_unexpected_json(b'{"no_class":1}\n'),
    handshake_then_unexpected_json(b'[1, 2, 3]\n'),
    handshake_then_unexpected_json(b'{"class":"TPV","lat":1,"lon":2}\n'),
    handshake_then_unexpected_json(
        b'{"class":"TPV","mode":3,"time":"2024-03-04T08:00:00Z","lat":"48.1","lon":1}\n'),
    handshake_then_unexpected_json(b'{"class":"TPV","mode":3,"time":"soon","lat":48,"lon":1}\n'),
], ids=["junk", "not-json", "tpv-without-position", "no-class", "a-list", "tpv-without-mode",
        "lat-a-string", "time-not-a-time"])
def test_garbage_is_counted_and_never_raises(
        serve: Callable[[Callable[[socket.socket], None]], FakeServer],
        handler: Callable[[socket.socket], None]) -> None:
    server = serve(handler)
    source = GpsdSource("127.0.0.1", server.port, timeout_s=1.0, backoff_initial_s=0.05)
    for _ in range(3):
        fix, took = timed_read(source)
        assert fix is None and took < 1.6
        time.sleep(0.1)
    assert source.stats["garbage"] >= 2
    assert source.stats["errors"] == 0  # every case was foreseen, not caught as a last resort
    source.close()


def test_no_device_is_a_mode_0_fix(
        serve: Callable[[Callable[[socket.socket], None]], FakeServer]) -> None:
    server = serve(handshake_then_unexpected_json(b"", watch=NO_DEVICE))
    source = GpsdSource("127.0.0.1", server.port, timeout_s=1.0)
    fix, took = timed_read(source)
    assert took < 0.5  # no receiver: nothing to wait for
    assert fix is not None and fix.mode == 0 and not fix.has_fix
    assert source.stats["no_fix"] == 1 and source.stats["garbage"] == 0


def streams(*reports: bytes, pause_s: float = 0.3) -> Callable[[socket.socket], None]:
    """gpsd's greeting and answer to ?WATCH, then `reports` one every `pause_s`."""
    def handle(conn: socket.socket) -> None:
        conn.sendall(HANDSHAKE)
        conn.recv(1024)
        conn.sendall(WATCH)
        for report in reports:
            time.sleep(pause_s)
            conn.sendall(report)
        time.sleep(30)

    return handle


def tpv(second: int, mode: int = 3, extra: str = "") -> bytes:
    return (f'{{"class":"TPV","mode":{mode},"time":"2026-02-02T09:00:{second:02d}.000Z",'
            f'"lat":48.38,"lon":0.67{extra}}}\n').encode()


def test_the_hdop_stands_in_when_gpsd_gives_no_error(
        serve: Callable[[Callable[[socket.socket], None]], FakeServer]) -> None:
    """gpsd 3.22 derives eph from any HDOP it has, so a real gpsd cannot send a TPV without
    error estimates beside a SKY with an HDOP (other versions and drivers can): a server
    speaking gpsd's protocol stands in for it."""
    sky = b'{"class":"SKY","hdop":1.2}\n'
    server = serve(streams(tpv(0), sky + tpv(1), tpv(2, mode=2), tpv(3, extra=',"eph":7.5'),
                           tpv(4, extra=',"epx":3.1,"epy":4.4,"eph":7.5'), tpv(5)))
    source = GpsdSource("127.0.0.1", server.port, timeout_s=1.0)
    readings = [wait_for(source, has_fix) for _ in range(5)]
    source.close()
    assert [r.ts.second for r in readings if r is not None] == [0, 1, 2, 3, 4]
    assert [r.acc for r in readings if r is not None] == [
        None,  # no estimate at all yet: not judged on accuracy
        pytest.approx(1.2 * UERE_95_M),  # the receiver's HDOP x UERE
        pytest.approx(1.2 * UERE_95_M * 2),  # a 2D fix: its altitude is a guess
        7.5,  # gpsd's eph
        4.4,  # its per-axis estimates
    ]
    assert all(r is not None and r.speed is None and r.heading is None for r in readings)


def test_one_time_reported_in_parts_is_one_fix(
        serve: Callable[[Callable[[socket.socket], None]], FakeServer]) -> None:
    """gpsd reports a cycle as it comes at start-up (RMC: 2D, then GGA: 3D with the error):
    the last report of a time is the fix, and only a later time completes it."""
    server = serve(streams(tpv(0, mode=2), tpv(0, extra=',"eph":9.0,"speed":3.0'), tpv(1)))
    source = GpsdSource("127.0.0.1", server.port, timeout_s=1.0)
    fix = wait_for(source, has_fix)
    source.close()
    assert fix is not None and (fix.mode, fix.acc, fix.speed, fix.ts.second) == (3, 9.0, 3.0, 0)
    assert source.stats["superseded"] == 0 and source.stats["fixes"] == 1


def test_simulated_status_and_a_missing_time(
        serve: Callable[[Callable[[socket.socket], None]], FakeServer]) -> None:
    no_time = b'{"class":"TPV","mode":3,"lat":48.38,"lon":0.67}\n'
    server = serve(streams(no_time, tpv(1, extra=',"status":8'), tpv(2, extra=',"status":7'),
                           tpv(3)))
    source = GpsdSource("127.0.0.1", server.port, timeout_s=1.0)
    readings = [wait_for(source, has_fix) for _ in range(2)]
    source.close()
    assert [(r.ts.second, r.simulated) for r in readings if r is not None] == [
        (1, True), (2, False)]  # 8 is simulated; 7 a surveyed timing fix, measured
    assert source.stats["no_time"] == 1


def test_parse_gpsd_time() -> None:
    assert parse_gpsd_time("2024-03-04T08:00:07.250Z") == datetime(
        2024, 3, 4, 8, 0, 7, 250_000, tzinfo=UTC)
    assert parse_gpsd_time("") is None and parse_gpsd_time("yesterday") is None
    assert parse_gpsd_time(None) is None
