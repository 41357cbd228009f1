"""Cellular data per vehicle-day: bytes the broker receives from one bus over a service day.

    .venv/bin/python -m bench.cellular_bytes [--speed 240] [--hours 8]

The real `onboard.agent.Agent` (GPS pipeline, the three simulated sensors, durable outbox,
MQTT link) runs a simulated 8-hour service day, about half of it driving, on an accelerated
clock against a real Mosquitto. The baseline, measured on the same broker right after, is
OwnTracks-style JSON, one message per reading: every GPS fix the agent accepted as its own
`_type: location` message and every value the sensors returned, at their own pace, as its
own message, published by a bare paho client at QoS 1 (OwnTracks' default). Both sides are
built from what the agent's GPS filter and sensors actually produced in the run, so they
describe the same day.

The MQTT bytes the broker received from each connection are measured three ways: the
broker's own `$SYS/broker/bytes/received` counter (read before and after, with only that
connection and this benchmark's tap connected), the kernel's TCP counters of the broker's
socket (`ss -ti`: `bytes_received`), and a tap subscribed to `medicobus/#` summing the
PUBLISH packets' sizes (fixed header + topic + packet id + payload). What it costs on the
air (TCP/IP and TLS around every packet, the acknowledgements) is an estimate from packet
counts, printed as such. The tap also plays the ground's part the bus waits for: it
acknowledges each of the bus's messages at once (`contract.Ack`, as a ground does in a quiet
moment; a real one may take several in one ack), so the downlink and the bus's PUBACKs
include them; the tap's own ack bytes are taken off the broker's counter.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter as Tally
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from bench.common import BenchBroker, Publisher, Section, bare_client, quiet_logs
from ground.fleet import Fleet, load_fleet
from medicobus import contract
from medicobus.clock import AcceleratedClock, Clock
from medicobus.demo import DEPOT, FLEET_FILE
from medicobus.geo import distance_m
from medicobus.mqtt import BrokerSettings
from onboard.agent import Agent
from onboard.config import FilterSettings, GpsSettings, OnboardSettings, SensorSettings
from onboard.telemetry.fix import Fix, GpsSource
from onboard.telemetry.fix_filter import FixFilter
from onboard.telemetry.sensors import Sample, Sensor
from onboard.telemetry.simulated import Drive, SimulatedSource, Tournee

TARGET_BYTES = 3_000_000  # a vehicle-day, uplink MQTT bytes
DAY = date(2026, 11, 23)  # a Monday
FIRST_ARRIVAL = (8, 30)
DWELL = timedelta(minutes=25)  # short visits so that about half of the 8 h is driving
EST_MPS = 15.0  # straight-line metres per second of a simulated drive (winding, villages)
TOPIC_PREFIX = "medicobus/"
BASELINE_CLIENT = "owntracks-perche-1"
BASELINE_LOCATION_TOPIC = contract.topic("perche-1", contract.Channel.POSITION)
BASELINE_READING_TOPIC = contract.topic("perche-1", contract.Channel.READING)
# The on-air estimate, per TCP segment and per TLS record (TLS 1.2, AES-GCM: 5-byte header,
# 8-byte explicit nonce, 16-byte tag; TLS 1.3 is 22). IPv4 + TCP without options: 40 bytes
# (Linux adds 12 of timestamps). A real day is one connection (no reconnects counted).
TCPIP_B = 40
TLS_B = 29
KEEPALIVE_S = 30  # BrokerSettings' default keepalive
PINGREQ_B = 2  # and PINGRESP
TLS_HANDSHAKE_B = 6_000  # a TLS 1.2 handshake with a two-certificate chain, both ways
DOWNLINK = {c.value for c in contract.DOWNLINK_CHANNELS}


class SysBroker(BenchBroker):
    """The benchmarks' Mosquitto, publishing its $SYS counters every second."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        with self.conf_path.open("a") as conf:
            conf.write("sys_interval 1\n")


class PacedClock(AcceleratedClock):
    """An AcceleratedClock whose `sleep` keeps a steady cadence on each thread.

    The agent polls GPS with `step(); clock.sleep(poll_s)`. On the bus a step takes about a
    millisecond of a one-second period; at 240x the same millisecond would be a quarter of
    the period and the simulated bus would read a fix every 1.25 s instead of every
    second. Sleeping until the previous deadline plus the period (not now plus the period)
    keeps one poll per simulated second, as on the bus. A thread that falls more than 50 ms
    of real time behind starts over from now rather than bursting to catch up."""

    def __init__(self, start: datetime, speed: float) -> None:
        super().__init__(start, speed)
        self._local = threading.local()

    def sleep(self, seconds: float) -> None:
        now = time.monotonic()
        last: float | None = getattr(self._local, "deadline", None)
        base = last if last is not None and now - last < 0.05 else now
        deadline = base + max(0.0, seconds) / self.speed
        self._local.deadline = deadline
        time.sleep(max(0.0, deadline - now))


# --- the day ---------------------------------------------------------------------------------


def half_driving_plan(fleet: Fleet, vehicle: str, day: date, hours: float) -> contract.Plan:
    """A day through the demo fleet's real stops with short visits and long legs (next: the
    farthest stop not among the last two), so that about half of `hours` is driving, the
    issue's "typical service day". The demo timetable itself drives about 1 h in 9."""
    zone = fleet.zone
    start = datetime.combine(day, datetime.min.time(), zone).replace(hour=FIRST_ARRIVAL[0],
                                                                     minute=FIRST_ARRIVAL[1])
    leave_depot = start - timedelta(seconds=distance_m(*DEPOT, fleet.stops[0].lat,
                                                       fleet.stops[0].lon) / EST_MPS + 300)
    end = leave_depot + timedelta(hours=hours)
    visits: list[contract.PlannedVisit] = []
    here, recent = DEPOT, [""]
    arrive = start
    stop = fleet.stops[0]
    while True:
        depart = arrive + DWELL
        home = depart + timedelta(seconds=distance_m(stop.lat, stop.lon, *DEPOT) / EST_MPS)
        if visits and home > end:
            break
        visits.append(contract.PlannedVisit(
            visit=f"{day.isoformat()}/{stop.id}/{len(visits)}", stop=stop.id,
            commune=stop.commune, insee=stop.insee, lat=stop.lat, lon=stop.lon,
            radius_m=stop.radius_m, arrive=arrive, depart=depart,
        ))  # fmt: skip
        here, recent = (stop.lat, stop.lon), [stop.id, recent[0]]
        stop = max((s for s in fleet.stops if s.id not in recent),
                   key=lambda s: distance_m(*here, s.lat, s.lon))
        arrive = depart + timedelta(seconds=distance_m(*here, stop.lat, stop.lon) / EST_MPS)
        arrive = arrive.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return contract.Plan(vehicle=vehicle, ts=contract.utcnow(), day=day, visits=visits)


def driving_seconds(tournee: Tournee, start: datetime, end: datetime) -> float:
    total = 0.0
    for phase in tournee.drives:
        lo, hi = max(start, phase.start), min(end, phase.end)
        total += max(0.0, (hi - lo).total_seconds())
    return total


# --- what the agent read, for the baseline ---------------------------------------------------


class GatedSource:
    """The simulated GPS, silent from `end` on; counts the agent's polls before `end`."""

    def __init__(self, inner: GpsSource, clock: Clock, end: datetime) -> None:
        self.inner = inner
        self.clock = clock
        self.end = end
        self.polls = 0

    def read(self) -> Fix | None:
        if self.clock.now() >= self.end:
            return None
        self.polls += 1
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()


class RecordingFilter(FixFilter):
    """The agent's fix filter, keeping every fix it accepts."""

    def __init__(self, settings: FilterSettings, vehicle: str) -> None:
        super().__init__(settings, vehicle)
        self.accepted: list[Fix] = []

    def accept(self, fix: Fix) -> bool:
        ok = super().accept(fix)
        if ok:
            self.accepted.append(fix)
        return ok


class RecordingSensor:
    """A sensor as the runner sees it, keeping every sample it returns."""

    def __init__(self, inner: Sensor) -> None:
        self.inner = inner
        self.name = inner.name
        self.interval_s = inner.interval_s
        self.stats = inner.stats
        self.samples: list[Sample] = []

    def read(self) -> Sample | None:
        sample = self.inner.read()
        if sample is not None:
            self.samples.append(sample)
        return sample

    def close(self) -> None:
        self.inner.close()


# --- measuring at the broker ------------------------------------------------------------------


def publish_size(topic: str, payload_len: int, qos: int = 1) -> int:
    """An MQTT 3.1.1 PUBLISH packet's size on the wire."""
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + payload_len
    length_bytes, n = 1, remaining
    while n >= 128:  # the remaining length is a base-128 varint
        n >>= 7
        length_bytes += 1
    return 1 + length_bytes + remaining


@dataclass
class Tapped:
    count: int = 0
    bytes: int = 0
    by_channel: Tally[str] = field(default_factory=Tally)
    bytes_by_channel: Tally[str] = field(default_factory=Tally)
    times: list[datetime] = field(default_factory=list)  # simulated, at arrival
    sizes: list[int] = field(default_factory=list)


class Tap:
    """One client: `$SYS/broker/bytes/received` (latest value) and every message on
    `medicobus/#` (QoS 0: it sends the broker nothing but its rare PINGREQ and, while
    `acking`, the ground's ack of each message from the bus, whose bytes it counts)."""

    def __init__(self, port: int) -> None:
        self.received: int | None = None
        self.acking = False
        self.acks = 0
        self.ack_bytes = 0  # the acks' PUBLISH packets, which the broker's counter includes
        self._updated = threading.Condition()
        self.clock: Clock | None = None
        self.tapped = Tapped()
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = bare_client(port, "bench-tap", persistent=False)
        self.client.on_connect = lambda c, *a: c.subscribe(
            [("$SYS/broker/bytes/received", 0), (TOPIC_PREFIX + "#", 0)])
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise TimeoutError("the tap got no SUBACK")

    def _on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.startswith("$SYS/"):
            with self._updated:
                self.received = int(msg.payload)
                self._updated.notify_all()
            return
        channel = msg.topic.rsplit("/", 1)[-1]
        if channel in DOWNLINK:
            return  # the ground's plan to the bus
        size = publish_size(msg.topic, len(msg.payload), qos=1)  # everything here is QoS 1
        if self.acking and channel != contract.Channel.STATUS:
            vehicle = contract.parse_topic(msg.topic)[0]
            ack = contract.Ack(vehicle=vehicle, ids=[json.loads(msg.payload)["id"]]).to_json()
            ack_topic = contract.topic(vehicle, contract.Channel.ACK)
            c.publish(ack_topic, ack, qos=1)
            with self._lock:
                self.acks += 1
                self.ack_bytes += publish_size(ack_topic, len(ack), qos=1)
        with self._lock:
            t = self.tapped
            t.count += 1
            t.bytes += size
            t.by_channel[channel] += 1
            t.bytes_by_channel[channel] += size
            if self.clock is not None:
                t.times.append(self.clock.now())
                t.sizes.append(size)

    def reset(self) -> Tapped:
        with self._lock:
            tapped, self.tapped = self.tapped, Tapped()
        return tapped

    def settled_received(self, quiet_s: float = 2.5) -> int:
        """The broker's received-bytes counter once everything so far is counted. Mosquitto
        publishes it every second when it changed (and once, retained, on subscribing): the
        latest value after `quiet_s` of silence from us is the settled one."""
        time.sleep(quiet_s)
        with self._updated:
            if not self._updated.wait_for(lambda: self.received is not None, 10):
                raise TimeoutError("no $SYS/broker/bytes/received from the broker")
            assert self.received is not None
            return self.received

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def socket_counters(broker_port: int, client: mqtt.Client) -> dict[str, int]:
    """The kernel's counters of the broker's end of `client`'s TCP connection."""
    sock = client.socket()
    if not isinstance(sock, socket.socket) or shutil.which("ss") is None:
        return {}
    client_port = sock.getsockname()[1]
    out = subprocess.run(
        ["ss", "-tinH", "state", "established",
         f"( sport = :{broker_port} and dport = :{client_port} )"],
        capture_output=True, text=True, timeout=10,
    ).stdout  # fmt: skip
    return {k: int(v) for k, v in re.findall(r"\b(bytes_received|bytes_acked):(\d+)", out)}


# --- the baseline --------------------------------------------------------------------------------


def _compact(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def location_message(fix: Fix) -> bytes:
    """An OwnTracks location (compact JSON, as its apps send it): vel km/h, cog degrees and
    acc metres as integers."""
    msg: dict[str, Any] = {"_type": "location", "lat": round(fix.lat, 6),
                           "lon": round(fix.lon, 6), "tst": int(fix.ts.timestamp())}
    if fix.acc is not None:
        msg["acc"] = round(fix.acc)
    if fix.speed is not None:
        msg["vel"] = round(fix.speed * 3.6)
    if fix.heading is not None:
        msg["cog"] = round(fix.heading)
    msg["tid"] = "p1"
    return _compact(msg)


def reading_messages(sensor: str, sample: Sample) -> list[bytes]:
    tst = int(sample.ts.timestamp())
    out = [_compact({"_type": "reading", "sensor": sensor, "q": q, "v": v, "tst": tst})
           for q, v in sample.values.items() if math.isfinite(v)]
    if sample.codes:
        out.append(_compact({"_type": "codes", "sensor": sensor, "codes": sample.codes,
                             "tst": tst}))
    return out


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Side:
    """One side's figures for the day."""

    name: str
    sys_bytes: int
    tcp: dict[str, int]
    tapped: Tapped
    messages: int  # PUBLISH packets from the vehicle
    pings: int = 0  # PINGREQs a real day adds in its silences (see `pings`)
    acks: int = 0  # the ground's acks to the vehicle (QoS 1 PUBLISH packets down)

    @property
    def day_bytes(self) -> int:
        """Uplink MQTT bytes of the day: measured, plus the keepalive pings."""
        return self.sys_bytes + self.pings * PINGREQ_B

    @property
    def down_bytes(self) -> int:
        """MQTT bytes the broker sent back (PUBACKs, the plan, acks), measured, plus
        PINGRESPs."""
        return self.tcp.get("bytes_acked", 0) + self.pings * PINGREQ_B

    def on_air_estimate(self) -> int:
        """Both ways over TLS on one long-lived connection: per QoS 1 message (or ping) a
        record up, a record down (PUBACK) and a bare TCP ACK back; the messages are seconds
        apart on a bus, so nothing coalesces. The same the other way for each of the ground's
        acks. Plus one TLS handshake."""
        exchanges = self.messages + self.pings
        up = self.day_bytes + exchanges * (TCPIP_B + TLS_B + TCPIP_B) + self.acks * (
            TLS_B + TCPIP_B)
        down = self.down_bytes + exchanges * (TLS_B + TCPIP_B) + self.acks * (
            TCPIP_B + TLS_B + TCPIP_B)
        return up + down + TLS_HANDSHAKE_B


def pings(times: Sequence[datetime], start: datetime, end: datetime) -> int:
    """PINGREQs a client with KEEPALIVE_S would send in the silences between `times` (the
    accelerated run sends them on real time, so they are counted apart)."""
    edges = [start, *sorted(times), end]
    return sum(int((b - a).total_seconds() // KEEPALIVE_S) for a, b in zip(edges, edges[1:],
                                                                             strict=False))


@dataclass
class DayResult:
    hours: float
    driving_share: float
    visits: int
    speed: float
    real_s: float
    polls_per_h: float
    accepted_fixes: int
    samples: dict[str, int]
    sample_rate_ok: bool
    product: Side
    baseline: Side
    drive_bytes_per_h: float
    park_bytes_per_h: float


def run_day(speed: float = 240.0, hours: float = 8.0, verbose: bool = True) -> DayResult:
    fleet = load_fleet(FLEET_FILE)
    vehicle = fleet.vehicles[0].id
    plan = half_driving_plan(fleet, vehicle, DAY, hours)
    tournee = Tournee.build(plan, depot=DEPOT, seed=1)
    start = tournee.start
    end = start + timedelta(hours=hours)
    driving = driving_seconds(tournee, start, end)
    shm = Path("/dev/shm")
    workdir = Path(tempfile.mkdtemp(prefix="medicobus-cellular-",
                                    dir=shm if shm.is_dir() else None))
    broker = SysBroker(workdir / "broker")
    broker.start()
    try:
        tap = Tap(broker.port)
        # The ground's retained plan, as on a real morning: the bus gets it on connecting.
        ground = Publisher(broker.port, "bench-ground")
        ground.client.publish(contract.topic(vehicle, contract.Channel.PLAN), plan.to_json(),
                              qos=1, retain=True)
        ground.published += 1
        ground.wait_acked(10)
        ground.close()
        tap.reset()  # the plan itself is downlink, not the bus's
        before = tap.settled_received()

        clock = PacedClock(start, speed)
        settings = OnboardSettings(
            vehicle=vehicle, data_dir=workdir / "bus", broker=BrokerSettings(port=broker.port),
            gps=GpsSettings(poll_s=1.0),
            sensors=[SensorSettings(type="simulated-engine"),
                     SensorSettings(type="simulated-battery"),
                     SensorSettings(type="simulated-fridge")],
        )  # fmt: skip
        source = GatedSource(SimulatedSource(tournee, clock), clock, end)
        agent = Agent(settings, source, clock)
        recording_filter = RecordingFilter(settings.filter, vehicle)
        agent.filter = recording_filter
        recorders = []
        for runner in agent.sensors:
            recorder = RecordingSensor(runner.sensor)
            runner.sensor = recorder
            recorders.append(recorder)
        tap.clock = clock
        tap.acking = True
        stop = threading.Event()
        t0 = time.monotonic()
        bus = threading.Thread(target=agent.run, args=(stop,), name="bus", daemon=True)
        bus.start()
        next_report = start + timedelta(hours=1)
        while (now := clock.now()) < end:
            if verbose and now >= next_report:
                print(f"  {now.astimezone(fleet.zone):%H:%M} simulated, "
                      f"{tap.tapped.count} messages so far", flush=True)
                next_report += timedelta(hours=1)
            time.sleep(min(1.0, max(0.01, (end - now).total_seconds() / speed)))
        for runner in agent.sensors:
            runner.stop()
        real_s = time.monotonic() - t0
        deadline = time.monotonic() + 60
        while agent.outbox.count() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        product_tcp = socket_counters(broker.port, agent.link.client)
        stop.set()
        bus.join(timeout=30)
        product_bytes = tap.settled_received() - before - tap.ack_bytes
        tap.clock = None
        tap.acking = False
        product_tap = tap.reset()

        # The baseline: what the agent accepted and sampled, one message per reading.
        fixes = [f for f in recording_filter.accepted if f.ts < end]
        readings = [m for r in recorders for s in r.samples
                    for m in reading_messages(r.name, s)]
        before = tap.settled_received()
        baseline = Publisher(broker.port, BASELINE_CLIENT)
        baseline.publish_all(BASELINE_LOCATION_TOPIC, [location_message(f) for f in fixes])
        baseline.publish_all(BASELINE_READING_TOPIC, readings)
        baseline.wait_acked()
        time.sleep(0.5)
        baseline_tcp = socket_counters(broker.port, baseline.client)
        baseline.close()
        baseline_bytes = tap.settled_received() - before
        baseline_tap = tap.reset()
        tap.close()
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    # Per hour driving and parked, from when each of the bus's messages arrived.
    drive_b = park_b = 0
    for at, size in zip(product_tap.times, product_tap.sizes, strict=True):
        if isinstance(tournee.phase_at(min(at, end)), Drive):
            drive_b += size
        else:
            park_b += size
    sim_s = (end - start).total_seconds()
    samples = {r.name: len(r.samples) for r in recorders}
    expected = {r.name: sim_s / r.interval_s for r in recorders}
    sample_rate_ok = all(samples[n] >= 0.97 * expected[n] for n in samples)
    fix_times = [f.ts for f in fixes]
    baseline_times = fix_times + [s.ts for r in recorders for s in r.samples]
    return DayResult(
        hours=hours, driving_share=driving / sim_s, visits=len(plan.visits), speed=speed,
        real_s=real_s, polls_per_h=source.polls / (sim_s / 3600), accepted_fixes=len(fixes),
        samples=samples, sample_rate_ok=sample_rate_ok,
        product=Side("medicobus", product_bytes, product_tcp, product_tap, product_tap.count,
                     pings(product_tap.times, start, end), tap.acks),
        baseline=Side("OwnTracks-style", baseline_bytes, baseline_tcp, baseline_tap,
                      len(fixes) + len(readings), pings(baseline_times, start, end)),
        drive_bytes_per_h=drive_b / max(1.0, driving / 3600),
        park_bytes_per_h=park_b / max(1.0, (sim_s - driving) / 3600),
    )  # fmt: skip


# --- report ------------------------------------------------------------------------------------


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def report(r: DayResult) -> Section:
    p, b = r.product, r.baseline
    ok = p.day_bytes < TARGET_BYTES
    ratio = b.day_bytes / p.day_bytes if p.day_bytes else math.inf
    air_p, air_b = p.on_air_estimate(), b.on_air_estimate()
    # The demo's own timetable (Monday: three visits) drives about 1 h in 9.
    timetable_day = r.drive_bytes_per_h * 1 + r.park_bytes_per_h * 8
    summary = [
        f"vehicle-day ({r.hours:g} h, {r.driving_share:.0%} driving, all sensors): medicobus "
        f"{_mb(p.day_bytes)} ({p.messages:,} messages), OwnTracks-style one message per "
        f"reading {_mb(b.day_bytes)} ({b.messages:,}); {ratio:.1f}x less "
        f"(target < {_mb(TARGET_BYTES)})",
    ]
    channels = ", ".join(f"{c} {n:,} ({p.tapped.bytes_by_channel[c] / 1e3:,.0f} kB)"
                         for c, n in p.tapped.by_channel.most_common())
    md = [
        f"Simulated day: {r.hours:g} h from the depot departure, {r.visits} visits at the demo "
        f"fleet's stops, {r.driving_share:.0%} of the time driving; run at {r.speed:g}x "
        f"({r.real_s:.0f} s of real time); the agent polled GPS {r.polls_per_h:,.0f} times "
        f"per simulated hour (3,600 expected) and accepted {r.accepted_fixes:,} fixes; "
        "sensor samples " + ", ".join(f"{n} {c:,}" for n, c in r.samples.items())
        + f" ({'at' if r.sample_rate_ok else '**below**'} their native pace: 5,760, 5,760 "
        "and 960 a day).",
        "",
        "| per vehicle-day | medicobus | OwnTracks-style | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| MQTT bytes received by the broker (`$SYS/broker/bytes/received`) | "
        f"{p.sys_bytes:,} | {b.sys_bytes:,} | |",
        f"| same, kernel TCP counter of the broker's socket (`ss -ti`) | "
        f"{p.tcp.get('bytes_received', 0):,} | {b.tcp.get('bytes_received', 0):,} | |",
        f"| same, PUBLISH packets summed by a `medicobus/#` tap | {p.tapped.bytes:,} | "
        f"{b.tapped.bytes:,} | |",
        f"| + keepalive PINGREQs a real day adds (counted from the silences) | "
        f"{p.pings * PINGREQ_B:,} ({p.pings}) | {b.pings * PINGREQ_B:,} ({b.pings}) | |",
        f"| **uplink MQTT bytes a day** | **{p.day_bytes:,}** | **{b.day_bytes:,}** | "
        f"**{ratio:.1f}x** |",
        f"| messages (PUBLISH, QoS 1) | {p.messages:,} | {b.messages:,} | "
        f"{b.messages / max(1, p.messages):.1f}x |",
        f"| downlink MQTT bytes (PUBACKs, the plan, {p.acks:,} acks; `ss -ti`) | "
        f"{p.down_bytes:,} | "
        f"{b.down_bytes:,} | |",
        f"| *estimate*: on the air both ways, TLS 1.2 + TCP/IPv4 | {air_p:,} | {air_b:,} | "
        f"{air_b / max(1, air_p):.1f}x |",
        "",
        f"medicobus messages by channel: {channels}. Per hour: "
        f"{r.drive_bytes_per_h / 1e3:,.0f} kB driving, {r.park_bytes_per_h / 1e3:,.0f} kB "
        f"parked; so the demo timetable's day (about 1 h of driving in 9) would be about "
        f"{_mb(timetable_day)}. Baseline: {b.tapped.by_channel['position']:,} locations "
        f"({b.tapped.bytes_by_channel['position'] / 1e3:,.0f} kB), "
        f"{b.tapped.by_channel['reading']:,} readings "
        f"({b.tapped.bytes_by_channel['reading'] / 1e3:,.0f} kB).",
    ]
    return Section("Cellular data per vehicle-day", summary, md, ok)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cellular_bytes",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speed", type=float, default=240.0,
                        help="simulated seconds per real second (default 240: 2 min a day)")
    parser.add_argument("--hours", type=float, default=8.0, help="length of the day")
    args = parser.parse_args(argv)
    quiet_logs()
    print(f"a {args.hours:g} h service day at {args.speed:g}x:", flush=True)
    result = run_day(args.speed, args.hours)
    section = report(result)
    print()
    print("\n".join(section.markdown))
    print()
    for line in section.summary:
        print(f"{'ok  ' if section.ok else 'MISS'} {line}")
    return 0 if section.ok else 1


if __name__ == "__main__":
    sys.exit(main())
