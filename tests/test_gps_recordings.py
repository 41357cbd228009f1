"""Recordings with the traits of gpsd's regression logs (issue 9), replayed by gpsfake into a
real gpsd and read by the agent's pipeline: GpsdSource -> FixFilter -> Position -> outbox.

Each recording starts with a few seconds of a receiver still searching, so that gpsd has
opened the device before the trait plays. The bus clock is pinned to MONDAY_8AM
(2026-11-23) whatever the recordings' dates, as on a Pi without a real-time clock.
"""

from __future__ import annotations

import contextlib
import math
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from medicobus import contract
from medicobus.geo import distance_m, offset
from medicobus.mqtt import BrokerSettings
from onboard.agent import Agent
from onboard.config import GpsSettings, OnboardSettings
from onboard.telemetry import nmea
from onboard.telemetry.fix import Fix
from onboard.telemetry.gps import GpsdSource
from tests.brokers import free_port
from tests.clocks import ManualClock
from tests.gpsfake import GpsFake, binary_gpsfake
from tests.harness import MONDAY_8AM, VEHICLE

pytestmark = pytest.mark.timeout(90)

LEAD_IN_S = 2.0  # of a receiver searching, before the trait: gpsd takes ~1 s to open it
CYCLE_S = 0.02  # gpsfake's pause between sentences


# -- recordings -----------------------------------------------------------------------------


def track(start: datetime, n: int, speed: float = 12.0) -> list[Fix]:
    """A bus heading north at `speed` m/s, one fix a second."""
    fixes = []
    for i in range(n):
        lat, lon = offset(48.3838, 0.6783, speed * i, 0.0)
        fixes.append(Fix(start + timedelta(seconds=i), lat, lon, mode=3, speed=speed,
                         heading=0.5, acc=8.0))
    return fixes


def searching(before: datetime, sky: bool = True) -> list[str]:
    """A receiver searching until `before`, for LEAD_IN_S of gpsfake's time: with `sky`,
    its GSA says DOPs of 99.99 (which gpsd keeps until new ones come); without, it sends
    RMC and GGA only."""
    def cycle(ts: datetime) -> list[str]:
        fix = Fix(ts, math.nan, math.nan, mode=1)
        return nmea.sentences(fix) if sky else [
            nmea.rmc(fix), nmea.sentence(f"GPGGA,{nmea._clock(fix)[0]},,,,,0,00,,,M,,M,,")]

    n = math.ceil(LEAD_IN_S / (CYCLE_S * len(cycle(before))))
    return [s for i in range(n, 0, -1) for s in cycle(before - timedelta(seconds=i))]


def rmc_gga(fix: Fix, rmc_mode: str = "A", quality: int = 1, hdop: str = "1.3",
            speed: bool = True, with_date: bool = True) -> list[str]:
    """A receiver that sends RMC and GGA only (no GSA, no GSV: gpsd has no sky)."""
    hms, dmy = nmea._clock(fix)
    lat, ns = nmea._latitude(fix.lat)
    lon, ew = nmea._longitude(fix.lon)
    knots = f"{(fix.speed or 0) * nmea.KNOTS_PER_MPS:.3f}" if speed else ""
    course = f"{fix.heading or 0:.1f}" if speed else ""
    gga = nmea.sentence(f"GPGGA,{hms},{lat},{ns},{lon},{ew},{quality},08,{hdop},150.0,M,"
                        f"46.9,M,,")
    if not with_date:
        return [gga]
    return [nmea.sentence(f"GPRMC,{hms},A,{lat},{ns},{lon},{ew},{knots},{course},{dmy},,,"
                          f"{rmc_mode}"), gga]


def log(lines: Iterable[str]) -> str:
    return "\r\n".join(["# Name: issue 9", *lines]) + "\r\n"


# -- the pipeline over a recording ----------------------------------------------------------


class Tap:
    """The GpsdSource as the agent reads it, noting when gpsd closed the receiver: with
    gpsfake -1, the end of the recording."""

    def __init__(self, source: GpsdSource) -> None:
        self.source = source
        self.had_receiver = False
        self.ended = False

    def read(self) -> Fix | None:
        reading = self.source.read()
        if reading is not None and reading.mode >= 1:
            self.had_receiver = True
        elif reading is not None:
            self.ended = self.had_receiver  # mode 0: gpsd has no receiver (any more)
            time.sleep(0.01)  # as the agent's poll_s would
        return reading

    def close(self) -> None:
        self.source.close()


@dataclass
class Run:
    agent: Agent
    source: GpsdSource
    accepted: list[Fix] = field(default_factory=list)

    @property
    def positions(self) -> list[contract.Position]:
        out = []
        for row in self.agent.outbox.after(0, 10_000):
            message = contract.parse_uplink(row.payload)
            if isinstance(message, contract.Position):
                out.append(message)
        return out


@contextlib.contextmanager
def play(tmp_path: Path, fake: GpsFake) -> Iterator[Run]:
    """Run the agent's steps over the whole recording: every fix accepted is kept, in
    order."""
    settings = OnboardSettings(
        vehicle=VEHICLE, data_dir=tmp_path / "bus", broker=BrokerSettings(port=free_port()),
        gps=GpsSettings(port=fake.port, timeout_s=1.0),
    )  # fmt: skip
    with fake:
        source = GpsdSource("127.0.0.1", fake.port, timeout_s=1.0)
        tap = Tap(source)
        agent = Agent(settings, tap, ManualClock(MONDAY_8AM))
        run = Run(agent, source)
        deadline = time.monotonic() + 30
        while not tap.ended and time.monotonic() < deadline:
            agent.step()
            last = agent.filter.last
            if last is not None and (not run.accepted or run.accepted[-1] is not last):
                run.accepted.append(last)
        assert tap.ended, f"the recording did not end: {source.stats}"
        assert source.stats["superseded"] == 0  # every fix was read
        try:
            yield run
        finally:
            source.close()
            agent.outbox.close()


def replay(tmp_path: Path, lines: list[str]) -> contextlib.AbstractContextManager[Run]:
    fake = GpsFake(tmp_path / "gps", nmea=log(lines), cycle_s=CYCLE_S, once=True,
                   nowait=False)
    return play(tmp_path, fake)


def assert_track(run: Run, fixes: list[Fix]) -> None:
    """Every fix of the track passed, in order, but maybe the first: gpsd's error estimate
    for it comes from the sky of the cycle before, when the receiver was still searching,
    and the 50 m cut refuses it."""
    times = [f.ts for f in run.accepted]
    assert times in ([f.ts for f in fixes], [f.ts for f in fixes[1:]]), (
        [t.second for t in times], run.agent.filter.rejected, run.source.stats)
    assert run.agent.filter.rejected["inaccurate"] == len(fixes) - len(times)


def assert_none_stamped_by_the_pi(run: Run, fixes: list[Fix]) -> None:
    sent = {f.ts for f in fixes}
    assert all(f.ts in sent for f in run.accepted)
    assert all(p.ts in sent for p in run.positions)


# -- the traits -----------------------------------------------------------------------------


@pytest.mark.parametrize("start", [
    datetime(2022, 3, 4, 9, 0, tzinfo=UTC),  # years before the bus clock
    datetime(2031, 6, 1, 9, 0, tzinfo=UTC),  # years ahead: a Pi without RTC, offline
], ids=["old", "ahead"])
def test_fixes_pass_whatever_their_date_against_the_bus_clock(
        tmp_path: Path, start: datetime) -> None:
    fixes = track(start, 20)
    lines = searching(start)
    lines += [s for f in fixes for s in nmea.sentences(f)]
    with replay(tmp_path, lines) as run:
        assert_none_stamped_by_the_pi(run, fixes)
        assert_track(run, fixes)
        assert set(run.agent.filter.rejected) <= {"no_fix", "inaccurate"}
        assert run.positions and all(p.ts.year == start.year for p in run.positions)


def test_a_fix_without_time_is_refused_never_dated_by_the_pi(tmp_path: Path) -> None:
    """GGA alone has no date: gpsd reports its positions without a time."""
    start = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
    fixes = track(start, 20)
    lines = searching(start)
    lines += [s for f in fixes[:8] for s in rmc_gga(f, with_date=False)]
    lines += [s for f in fixes[8:] for s in rmc_gga(f)]
    with replay(tmp_path, lines) as run:
        assert run.source.stats["no_time"] >= 5
        assert_none_stamped_by_the_pi(run, fixes)
        assert run.accepted and run.accepted[0].ts >= fixes[8].ts
        assert len(run.accepted) >= 10


def test_missing_speed_course_and_error_stay_missing(tmp_path: Path) -> None:
    """RMC with empty speed and course, GGA without HDOP, no GSA/GSV: gpsd knows neither
    the motion nor the error; nothing may stand in for them (0 m/s, due north, 0 m)."""
    start = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
    fixes = track(start, 12)
    lines = searching(start, sky=False)
    lines += [s for f in fixes for s in rmc_gga(f, hdop="", speed=False)]
    with replay(tmp_path, lines) as run:
        assert len(run.accepted) >= 10, (run.agent.filter.rejected, run.source.stats)
        assert all(f.heading is None and f.acc is None for f in run.accepted)
        # gpsd works a speed out from successive positions, never for the first one
        assert run.accepted[0].speed is None
        assert all(f.speed is None or f.speed == pytest.approx(12.0, rel=0.15)
                   for f in run.accepted)
        assert all(p.heading is None and p.acc is None for p in run.positions)


def test_hdop_only_receiver_is_judged_by_its_hdop(tmp_path: Path) -> None:
    """RMC + GGA with an HDOP and no sky: gpsd's eph (19 m x HDOP) is the estimate; a
    receiver with an HDOP of 3 (57 m) is too coarse for the 50 m cut. (gpsd 3.22 puts a
    cycle's HDOP in the next cycle's report: the cut falls one fix late.)"""
    start = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
    fixes = track(start, 16)
    lines = searching(start, sky=False)
    lines += [s for f in fixes[:8] for s in rmc_gga(f, hdop="1.3")]
    lines += [s for f in fixes[8:] for s in rmc_gga(f, hdop="3.0")]
    with replay(tmp_path, lines) as run:
        assert len(run.accepted) >= 7
        assert all(f.acc == pytest.approx(19 * 1.3, abs=0.1) for f in run.accepted)
        assert all(f.ts <= fixes[8].ts for f in run.accepted)
        assert run.agent.filter.rejected["inaccurate"] >= 7


def test_time_stepping_back_is_refused_as_out_of_order(tmp_path: Path) -> None:
    start = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
    fixes = track(start, 20)
    again = fixes[5]  # a receiver sending an old fix once more
    order = [*fixes[:10], again, *fixes[10:]]
    lines = searching(start)
    lines += [s for f in order for s in nmea.sentences(f)]
    with replay(tmp_path, lines) as run:
        assert run.agent.filter.rejected["out_of_order"] == 1
        assert_track(run, fixes)
        stored = [p.ts for p in run.positions]
        assert stored == sorted(stored)


def test_a_startup_jump_read_twice_does_not_crash(tmp_path: Path) -> None:
    """The crash of issue 9: a receiver's start-up jump reported twice with one time, a lost
    fix in between (so gpsd reports it twice, and the filter reads it twice)."""
    start = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
    fixes = track(start, 20)
    far = offset(fixes[5].lat, fixes[5].lon, 30_000, 0)
    jump = Fix(fixes[5].ts, far[0], far[1], mode=3, speed=12.0, heading=0.5, acc=8.0)
    lost = Fix(fixes[5].ts, math.nan, math.nan, mode=1)
    order = [*fixes[:5], jump, lost, jump, *fixes[6:]]
    lines = searching(start)
    lines += [s for f in order for s in nmea.sentences(f)]
    with replay(tmp_path, lines) as run:
        assert run.agent.filter.rejected["jump"] == 1
        assert run.agent.filter.rejected["duplicate"] == 1
        assert_track(run, [*fixes[:5], *fixes[6:]])
        assert all(distance_m(p.lat, p.lon, far[0], far[1]) > 20_000 for p in run.positions)


def test_a_receiver_in_demo_mode_is_refused(tmp_path: Path) -> None:
    """A Garmin in demo mode: RMC mode 'S', GGA quality 8, which gpsd reports as TPV
    status 8 (simulated). Its invented positions never reach the outbox."""
    start = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
    fixes = track(start, 15)
    lines = searching(start)
    lines += [s for f in fixes for s in rmc_gga(f, rmc_mode="S", quality=8)]
    with replay(tmp_path, lines) as run:
        assert run.agent.filter.rejected["simulated"] >= 12
        assert run.accepted == [] and run.positions == []


def nav_pvt(fix: Fix, h_acc_m: float) -> bytes:
    """A u-blox UBX NAV-PVT message (class 0x01, id 0x07, 92 bytes) for `fix`."""
    ts = fix.ts.astimezone(UTC)
    gps_epoch = datetime(1980, 1, 6, tzinfo=UTC)
    itow_ms = round(((ts - gps_epoch).total_seconds() + 18) % 604_800 * 1000)
    valid = 0x07  # date, time, fully resolved
    payload = struct.pack("<IHBBBBBBIiBBBB", itow_ms, ts.year, ts.month, ts.day, ts.hour,
                          ts.minute, ts.second, valid, 50, 0, 3, 0x01, 0, 9)
    payload += struct.pack("<iiiiII", round(fix.lon * 1e7), round(fix.lat * 1e7), 200_000,
                           150_000, round(h_acc_m * 1000), 5000)
    payload += struct.pack("<iiiiiIIH", 0, 0, 0, round((fix.speed or 0) * 1000),
                           round((fix.heading or 0) * 1e5), 300, 50_000, 150)
    payload += bytes(6) + struct.pack("<ihH", 0, 0, 0)
    body = struct.pack("<BBH", 0x01, 0x07, len(payload)) + payload
    ck_a = ck_b = 0
    for byte in body:
        ck_a = (ck_a + byte) & 0xFF
        ck_b = (ck_b + ck_a) & 0xFF
    return b"\xb5\x62" + body + bytes([ck_a, ck_b])


def test_a_ubx_receiver_is_read_with_its_own_accuracy(tmp_path: Path) -> None:
    """A u-blox receiver in its binary protocol: gpsd's eph is the receiver's hAcc."""
    start = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
    fixes = track(start, 60)
    data = b"".join(nav_pvt(f, h_acc_m=4.2) for f in fixes)
    fake = binary_gpsfake(tmp_path / "gps", data, cycle_s=0.05, once=True, nowait=False)
    with play(tmp_path, fake) as run:
        assert len(run.accepted) >= 20
        assert_none_stamped_by_the_pi(run, fixes)
        for f in run.accepted:
            assert f.acc == pytest.approx(4.2, abs=0.01)
            assert f.speed == pytest.approx(12.0, abs=0.01)
            assert f.heading == pytest.approx(0.5, abs=0.01)
        assert run.positions and all(p.acc == 4.0 for p in run.positions)

