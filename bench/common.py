"""Small helpers shared by the benchmarks: a broker, messages, bare paho clients, the real
ground service (in this process or in a child process) and figures.

Timestamps are `time.monotonic()`, which on Linux is one system-wide clock: times taken in a
child process can be compared with times taken here.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import platform
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt

import medicobus
from ground.service import GroundService, GroundSettings, HttpSettings
from medicobus import contract
from medicobus.brokers import Mosquitto, free_port, wait_for_port
from medicobus.clock import AcceleratedClock
from medicobus.mqtt import BrokerSettings

FLEET = Path(medicobus.__file__).resolve().parent / "defaults" / "fleet.toml"
PARIS = ZoneInfo("Europe/Paris")
MONDAY_8AM = datetime(2026, 11, 23, 8, 0, tzinfo=PARIS)  # perche-1 is due at Nocé at 08:30
VEHICLE = "perche-1"
NOCE = "61309"
GROUND_CLIENT_ID = "medicobus-ground"  # what ground.ingest.Ingest connects as
POSITION_TOPIC = contract.topic(VEHICLE, contract.Channel.POSITION)
BATCH_TOPIC = contract.topic(VEHICLE, contract.Channel.BATCH)

# The production broker's queueing and flow-control settings (config/mosquitto/mosquitto.conf),
# the same for the bare baseline and the product. Logging is kept to errors: the `log_type
# all` of medicobus.brokers.Mosquitto writes a line per packet and would time the log file.
BROKER_CONF = """\
allow_anonymous true
autosave_interval 30
autosave_on_changes false
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 100
max_packet_size 1048576
"""

SPAWN: SpawnContext = multiprocessing.get_context("spawn")


class BenchBroker(Mosquitto):
    """medicobus.brokers.Mosquitto with the production flow-control settings and quiet logs."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.conf_path.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            f"log_dest file {self.log}\n"
            "log_type error\n"
            "log_type warning\n" + BROKER_CONF
        )


@contextmanager
def broker(workdir: Path) -> Iterator[BenchBroker]:
    b = BenchBroker(workdir)
    b.start()
    try:
        yield b
    finally:
        b.stop()


# --- messages ------------------------------------------------------------------------------


# Where the synthetic drives of a backlog start: two days before the ground's clock, so
# that 100,000 positions a second apart are all in its past, as a drained backlog is (the
# ground sets aside what is dated ahead of it).
BACKLOG_START = MONDAY_8AM - timedelta(days=2)


def position(i: int, prefix: str = "pos", start: datetime = MONDAY_8AM) -> contract.Position:
    """The i-th position of a synthetic drive towards Nocé, a second apart from `start`,
    with a recognisable id."""
    return contract.Position(
        id=f"{prefix}{i:08d}", vehicle=VEHICLE, ts=start + timedelta(seconds=i),
        lat=48.45 - (i % 5000) * 1e-5, lon=0.55 + (i % 5000) * 1e-5,
        speed=12.0, heading=135.0, acc=5.0,
    )  # fmt: skip


def position_ids(n: int, prefix: str = "pos") -> list[str]:
    return [f"{prefix}{i:08d}" for i in range(n)]


def position_payloads(n: int, prefix: str = "pos") -> list[bytes]:
    return [position(i, prefix, BACKLOG_START).to_json() for i in range(n)]


def batch_payloads(n: int, size: int, prefix: str = "bat") -> list[bytes]:
    """`n` positions in batch messages of `size` items, as a bus drains its backlog."""
    items = [position(i, prefix, BACKLOG_START) for i in range(n)]
    return [
        contract.Batch(vehicle=VEHICLE, ts=MONDAY_8AM, items=items[k : k + size]).to_json()  # type: ignore[arg-type]
        for k in range(0, n, size)
    ]


# --- bare paho clients ---------------------------------------------------------------------


def bare_client(port: int, client_id: str, *, persistent: bool) -> mqtt.Client:
    """A paho 2.x client set up as the product's are (MQTT 3.1.1, VERSION2 callbacks)."""
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                       clean_session=not persistent, protocol=mqtt.MQTTv311)  # fmt: skip


def _connect(client: mqtt.Client, port: int, timeout: float = 10.0) -> None:
    connected = threading.Event()
    previous: Callable[..., None] | None = client.on_connect

    def on_connect(c: mqtt.Client, u: Any, f: Any, rc: mqtt.ReasonCode, p: Any) -> None:
        if previous is not None:
            previous(c, u, f, rc, p)
        connected.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    if not connected.wait(timeout):
        raise TimeoutError(f"no CONNACK from the broker on port {port}")


def register_session(port: int, client_id: str) -> None:
    """Open a persistent session subscribed (QoS 1) to the uplink, then leave: the broker
    queues for it everything published from now on."""
    client = bare_client(port, client_id, persistent=True)
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    _connect(client, port)
    client.subscribe(contract.uplink_subscription(), qos=1)
    if not subscribed.wait(10):
        raise TimeoutError("no SUBACK")
    client.disconnect()
    client.loop_stop()


class Publisher:
    """A bare QoS 1 publisher that counts PUBACKs in `on_publish` (paho defaults otherwise).

    paho calls `on_publish` holding its own lock, so nothing here calls into paho while
    holding ours."""

    def __init__(self, port: int, client_id: str = "bench-publisher") -> None:
        self.client = bare_client(port, client_id, persistent=False)
        self.published = 0
        self.acked = 0
        self._cond = threading.Condition()
        self.client.on_publish = self._on_publish
        _connect(self.client, port)

    def _on_publish(self, c: mqtt.Client, u: Any, mid: int, rc: mqtt.ReasonCode,
                    p: Any) -> None:
        with self._cond:
            self.acked += 1
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish failed: {mqtt.error_string(info.rc)}")
        self.published += 1

    def publish_all(self, topic: str, payloads: Sequence[bytes], window: int = 10_000) -> None:
        """Publish as fast as paho takes them, keeping fewer than `window` unacknowledged
        (paho's message ids wrap at 65,535: more outstanding would collide)."""
        for payload in payloads:
            if self.published - self.acked >= window:
                with self._cond:
                    self._cond.wait_for(lambda: self.published - self.acked < window // 2, 60)
            self.publish(topic, payload)

    def wait_acked(self, timeout: float = 120.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.acked >= self.published, timeout):
                raise TimeoutError(f"{self.published - self.acked} publishes not acknowledged")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def preload(port: int, client_id: str, topic: str, payloads: Sequence[bytes]) -> None:
    """Queue `payloads` at the broker for the persistent session `client_id`."""
    register_session(port, client_id)
    pub = Publisher(port)
    pub.publish_all(topic, payloads)
    pub.wait_acked()
    pub.close()


class Counter:
    """A bare QoS 1 subscriber on a persistent session that only counts messages (or, with
    `keep_times`, notes when each message id arrived)."""

    def __init__(self, port: int, client_id: str, target: int, keep_times: bool = False) -> None:
        self.port = port
        self.target = target
        self.count = 0
        self.done_at: float | None = None
        self.done = threading.Event()
        self.subscribed = threading.Event()
        self.times: dict[str, float] = {}
        self._keep_times = keep_times
        self._arrived = threading.Condition()
        self.client = bare_client(port, client_id, persistent=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, c: mqtt.Client, u: Any, f: Any, rc: mqtt.ReasonCode, p: Any) -> None:
        c.subscribe(contract.uplink_subscription(), qos=1)

    def _on_message(self, c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.rsplit("/", 1)[-1] in contract.DOWNLINK_CHANNELS:
            return  # the ground's plans and acks, seen through the wildcard: not counted
        if self._keep_times:
            at = time.monotonic()
            with self._arrived:
                self.times[json.loads(msg.payload)["id"]] = at
                self._arrived.notify_all()
        self.count += 1
        if self.count == self.target:
            self.done_at = time.monotonic()
            self.done.set()

    def start(self) -> None:
        _connect(self.client, self.port)

    def wait_for(self, message_id: str, timeout: float) -> float | None:
        with self._arrived:
            self._arrived.wait_for(lambda: message_id in self.times, timeout)
            return self.times.get(message_id)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def counter_process(port: int, client_id: str, target: int, ready: Any, out: Any) -> None:
    """Child process: a Counter; puts the monotonic time the target was reached on `out`."""
    counter = Counter(port, client_id, target)
    counter.start()
    counter.subscribed.wait(10)
    ready.set()
    counter.done.wait(600)
    out.put({"done_at": counter.done_at, "count": counter.count})
    counter.close()


# --- the real ground -----------------------------------------------------------------------


def quiet_logs() -> None:
    """Errors only: Ingest.stop logs a warning about its own normal disconnection."""
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("ground").setLevel(logging.ERROR)


def ground_service(workdir: Path, broker_port: int, http_port: int | None = None,
                   fleet: Path = FLEET) -> GroundService:
    """The real GroundService on its own SQLite file, its clock at Monday 08:00 (real speed).
    Not started."""
    return GroundService(
        GroundSettings(fleet=fleet, database=workdir / "ground.db",
                       broker=BrokerSettings(port=broker_port),
                       http=HttpSettings(port=http_port or free_port())),
        AcceleratedClock(MONDAY_8AM, 1.0),
    )  # fmt: skip


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.002
               ) -> float:
    """Poll `check`; return the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def stored_ids(database: Path, table: str = "positions") -> list[str]:
    """Ids in the ground's store, read on a connection of our own (WAL: no blocking)."""
    conn = sqlite3.connect(str(database))
    try:
        return [r[0] for r in conn.execute(f"SELECT id FROM [{table}]")]
    finally:
        conn.close()


@dataclass
class GroundJob:
    """What a ground child process is asked to do."""

    workdir: str
    broker_port: int
    http_port: int | None = None
    expect: int = 0  # wait until this many are stored, then verify them
    prefix: str = "pos"
    settle_s: float = 1.0  # after the last one: time for stray duplicates to show
    fleet: str = str(FLEET)


def ground_process(job: GroundJob, ready: Any, stop: Any, out: Any) -> None:
    """Child process: run the real GroundService; optionally report when `expect` positions
    are stored, with a check for loss and duplicates."""
    quiet_logs()
    service = ground_service(Path(job.workdir), job.broker_port, job.http_port,
                             Path(job.fleet))
    service.start()
    if job.http_port:
        service.serve_http()
        wait_for_port(job.http_port)
    service.ingest.connected.wait(10)
    ready.set()
    if job.expect:
        stats = service.ingest.stats
        done_at = wait_until(lambda: stats["stored"] >= job.expect, 600, "stored", 0.005)
        time.sleep(job.settle_s)
        ids = stored_ids(Path(job.workdir) / "ground.db")
        out.put({
            "done_at": done_at, "rows": len(ids), "distinct": len(set(ids)),
            "ids_match": set(ids) == set(position_ids(job.expect, job.prefix)),
            "stats": dict(stats),
        })  # fmt: skip
    stop.wait(600)
    service.stop()


@dataclass
class Child:
    process: Any
    ready: Any
    stop: Any
    out: Any

    def finish(self) -> None:
        self.stop.set()
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)


def start_child(target: Callable[..., None], *args: Any) -> Child:
    ready, stop, out = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    if target is counter_process:
        proc = SPAWN.Process(target=target, args=(*args, ready, out), daemon=True)
    else:
        proc = SPAWN.Process(target=target, args=(*args, ready, stop, out), daemon=True)
    proc.start()
    if not ready.wait(60):
        proc.terminate()
        raise RuntimeError(f"{target.__name__} did not get ready")
    return Child(proc, ready, stop, out)


# --- figures -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


@dataclass
class Section:
    """One benchmark's results: lines for the console and Markdown for the docs."""

    title: str
    summary: list[str] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)
    ok: bool = True
    # Per summary line: True / False against its target, None for a line that has none.
    # Lines without an entry take `ok`.
    verdicts: list[bool | None] = field(default_factory=list)

    def verdict(self, index: int) -> bool | None:
        return self.verdicts[index] if index < len(self.verdicts) else self.ok


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, str]:
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }
