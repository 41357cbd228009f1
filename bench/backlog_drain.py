"""Draining a 100,000-message backlog: time, zero loss, zero duplicates.

Fill: a real onboard.outbox.Outbox receives 100,000 positions through `Outbox.put` while the
bus is offline (timed once: each put is a durable commit). Each run then starts from a copy
of that file.

Drain (product): on a fresh Mosquitto, the real GroundService runs in a child process (the
ground is another machine in production); here the real onboard.link.Link connects and
drains the outbox (batches of 200, 8 in flight, rows removed on the ground's ack, after its
commit). Timed from `Link.start()` until both the outbox is empty (every row acknowledged
by the ground) and the ground has
stored 100,000 positions; then, after a second for stray redeliveries, the ground's
positions table must hold exactly the 100,000 expected ids, no more rows than that, and the
outbox none.

Baseline, same run and broker config: a bare paho publisher sends the same 100,000 payloads
one per message (QoS 1, paho defaults) while a bare subscriber in a child process counts
them; timed from the first publish to the last count (all PUBACKs received by then too).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench.common import (
    BACKLOG_START,
    POSITION_TOPIC,
    VEHICLE,
    GroundJob,
    Publisher,
    Section,
    broker,
    counter_process,
    ground_process,
    median,
    position,
    start_child,
    wait_until,
)
from medicobus.mqtt import BrokerSettings
from onboard.link import Link
from onboard.outbox import Outbox

N = 100_000
PREFIX = "bkl"


def fill(path: Path, n: int) -> float:
    """Put `n` positions in a fresh outbox; seconds taken."""
    messages = [position(i, PREFIX, BACKLOG_START) for i in range(n)]
    outbox = Outbox(path)
    t0 = time.monotonic()
    for m in messages:
        outbox.put(m)
    seconds = time.monotonic() - t0
    if outbox.count() != n:
        raise AssertionError(f"outbox holds {outbox.count()} rows, not {n}")
    outbox.close()  # checkpoints the WAL into the file: a plain copy is then complete
    return seconds


def payloads_of(path: Path) -> list[bytes]:
    outbox = Outbox(path)
    rows = outbox.after(0, 10 * N)
    outbox.close()
    return [r.payload.encode() for r in rows]


def drain(workdir: Path, filled: Path, n: int) -> dict[str, float | int | bool]:
    workdir.mkdir(parents=True)
    path = workdir / "outbox.db"
    shutil.copyfile(filled, path)
    with broker(workdir / "broker") as b:
        ground = start_child(ground_process, GroundJob(str(workdir), b.port, None, n, PREFIX))
        try:
            outbox = Outbox(path)
            link = Link(BrokerSettings(port=b.port), VEHICLE, outbox, lambda plan: None)
            t0 = time.monotonic()
            link.start()
            acked = wait_until(lambda: link.stats["acked_rows"] >= n, 600, "outbox drained",
                               0.01)  # fmt: skip
            report = ground.out.get(timeout=600)
            left = outbox.count()
            link.stop()
            outbox.close()
        finally:
            ground.finish()
    seconds = max(acked, report["done_at"]) - t0
    stats = report["stats"]
    return {
        "seconds": seconds,
        "left_in_outbox": left,
        "rows": report["rows"],
        "distinct": report["distinct"],
        "ids_match": report["ids_match"],
        "redelivered": stats["duplicates"],
        "dead_letters": stats["dead_letters"],
        "mqtt_messages": link.stats["sent"],
    }


def baseline(workdir: Path, payloads: list[bytes]) -> float:
    with broker(workdir / "broker") as b:
        counter = start_child(counter_process, b.port, "bench-bare", len(payloads))
        try:
            pub = Publisher(b.port)
            t0 = time.monotonic()
            pub.publish_all(POSITION_TOPIC, payloads)
            pub.wait_acked(600)
            acked = time.monotonic()
            report = counter.out.get(timeout=600)
            pub.close()
        finally:
            counter.finish()
    if report["count"] != len(payloads):
        raise AssertionError(f"bare subscriber counted {report['count']}")
    return max(report["done_at"], acked) - t0


def run(runs: int = 3, n: int = N) -> Section:
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        filled = Path(tmp) / "filled.db"
        fill_s = fill(filled, n)
        print(f"  filled the outbox: {n:,} puts in {fill_s:.1f} s", flush=True)
        payloads = payloads_of(filled)
        results: list[dict[str, float | int | bool]] = []
        bases: list[float] = []
        for r in range(runs):
            results.append(drain(Path(tmp) / f"drain{r}", filled, n))
            bases.append(baseline(Path(tmp) / f"base{r}", payloads))
            res = results[-1]
            print(f"  run {r + 1}/{runs}: drain {res['seconds']:.1f} s "
                  f"(rows {res['rows']}, distinct {res['distinct']}, ids match "
                  f"{res['ids_match']}, left {res['left_in_outbox']}, redelivered "
                  f"{res['redelivered']}); bare {bases[-1]:.1f} s", flush=True)  # fmt: skip

    lossless = all(
        r["ids_match"] and r["rows"] == n and r["distinct"] == n and r["left_in_outbox"] == 0
        and r["dead_letters"] == 0
        for r in results
    )  # fmt: skip
    drain_s = median([float(r["seconds"]) for r in results])
    base_s = median(bases)
    redelivered = sum(int(r["redelivered"]) for r in results)
    section = Section("Backlog drain")
    section.ok = lossless
    verdict = "zero loss, zero duplicates" if lossless else "LOSS OR DUPLICATES: see below"
    section.summary.append(
        f"drain {n:,}: {drain_s:.1f} s ({n / drain_s:,.0f} msg/s), {verdict}; bare paho "
        f"{base_s:.1f} s ({n / base_s:,.0f} msg/s); ratio {base_s / drain_s:.2f}; "
        f"outbox fill {fill_s:.1f} s ({n / fill_s:,.0f} puts/s)"
    )
    section.markdown += [
        f"{n:,} positions waiting in the bus's outbox, drained by the real Link to the real "
        f"ground (separate processes); median of {runs} runs.",
        "",
        "| what | time | rate |",
        "| --- | ---: | ---: |",
        f"| Link + ground: outbox empty and all stored | **{drain_s:.1f} s** "
        f"| **{n / drain_s:,.0f} msg/s** |",
        f"| bare paho: {n:,} QoS 1 publishes counted by a bare subscriber | {base_s:.1f} s "
        f"| {n / base_s:,.0f} msg/s |",
        f"| fill: {n:,} × `Outbox.put` while offline (once, not in the drain) | {fill_s:.1f} s "
        f"| {n / fill_s:,.0f} puts/s |",
        "",
        f"Drain ÷ bare throughput: **{base_s / drain_s:.2f}**. Check after each run: "
        f"{verdict} (per run: rows stored {', '.join(str(r['rows']) for r in results)}; "
        f"distinct ids {', '.join(str(r['distinct']) for r in results)}; id set equal to "
        f"the outbox's: {', '.join(str(r['ids_match']) for r in results)}; rows left in the "
        f"outbox {', '.join(str(r['left_in_outbox']) for r in results)}); redeliveries "
        f"skipped by the store: {redelivered}; MQTT messages per drain: "
        f"{results[0]['mqtt_messages']} (batches of 200; the status is not counted).",
    ]
    return section


if __name__ == "__main__":
    print("\n".join(run(runs=1).summary))
