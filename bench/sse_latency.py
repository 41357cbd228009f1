"""Publish-to-SSE latency, against bare publish-to-subscribe in the same run.

The real GroundService (ingest, store, live state, board, FastAPI under uvicorn) runs in a
child process on a fresh Mosquitto. This process holds three clients: an SSE stream on
/communes/61309/events (httpx, on its own thread), a bare paho subscriber (QoS 1, persistent
session) and a publisher. Positions of perche-1, which serves Nocé (61309) on Mondays, are
published one at a time (QoS 1); for each we note when the bare subscriber got it and when
the SSE event it caused arrived, then wait ~20 ms before the next. Every ingested batch
notifies the board once and the stream sends one event per wake-up, and we wait for both
before publishing the next position, so the first event after a publish is the one that
reflects it (no coalescing, no 30 s refresh in between); each event must carry a
`last_seen`. The first positions are a warm-up and are not counted.
"""

from __future__ import annotations

import json
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    NOCE,
    POSITION_TOPIC,
    Counter,
    GroundJob,
    Publisher,
    Section,
    broker,
    free_port,
    ground_process,
    median,
    percentile,
    position,
    start_child,
)

N = 200
WARMUP = 10
GAP_S = 0.02
TIMEOUT_S = 2.0
TARGET_ADDED_P99_MS = 50.0


class SseReader:
    """Reads an SSE stream on a thread; each event is queued as (arrival time, data)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: queue.SimpleQueue[tuple[float, dict[str, Any]]] = queue.SimpleQueue()
        self.open = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="sse", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self.open.wait(10):
            raise TimeoutError(f"SSE stream {self.url} did not open")

    def _read(self) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(10, read=1.0)) as http, \
                    http.stream("GET", self.url) as r:  # fmt: skip
                r.raise_for_status()
                self.open.set()
                data: list[str] = []
                for line in r.iter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif line == "" and data:
                        self.events.put((time.monotonic(), json.loads("\n".join(data))))
                        data = []
        except (httpx.HTTPError, RuntimeError, ValueError):
            if not self._stop.is_set():
                raise

    def next(self, timeout: float) -> tuple[float, dict[str, Any]] | None:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Hang up: the reader's next read times out (events come every ~30 ms until the
        last publish; then within a second) and it leaves the stream."""
        self._stop.set()
        self._thread.join(timeout=5)


def one_run(workdir: Path, n: int) -> tuple[list[float], list[float], int]:
    """Latencies in ms (bare, sse) for `n` counted positions, and how many SSE were missing."""
    bare_ms: list[float] = []
    sse_ms: list[float] = []
    missing = 0
    with broker(workdir / "broker") as b:
        http_port = free_port()
        ground = start_child(ground_process, GroundJob(str(workdir), b.port, http_port))
        try:
            bare = Counter(b.port, "bench-bare", target=n + WARMUP, keep_times=True)
            bare.start()
            bare.subscribed.wait(10)
            sse = SseReader(f"http://127.0.0.1:{http_port}/communes/{NOCE}/events")
            sse.start()
            if sse.next(10) is None:
                raise TimeoutError("no initial SSE event")
            pub = Publisher(b.port)
            for i in range(WARMUP + n):
                message = position(i, "sse")
                payload = message.to_json()
                t0 = time.monotonic()
                pub.publish(POSITION_TOPIC, payload)
                got = bare.wait_for(message.id, TIMEOUT_S)
                event = sse.next(TIMEOUT_S)
                if got is None:
                    raise TimeoutError(f"bare subscriber never got {message.id}")
                if event is None or event[1].get("last_seen") is None:
                    missing += i >= WARMUP
                elif i >= WARMUP:
                    bare_ms.append((got - t0) * 1000)
                    sse_ms.append((event[0] - t0) * 1000)
                time.sleep(GAP_S)
            extra = sse.next(0.5)  # one event per publish, never more
            if extra is not None:
                raise AssertionError("an SSE event that no publish caused")
            pub.close()
            bare.close()
            sse.close()
        finally:
            ground.finish()
    return bare_ms, sse_ms, missing


def run(runs: int = 3, n: int = N) -> Section:
    per_run: list[dict[str, float]] = []
    missing = 0
    for r in range(runs):
        with tempfile.TemporaryDirectory(prefix="bench-sse-") as tmp:
            bare_ms, sse_ms, miss = one_run(Path(tmp), n)
        missing += miss
        figures = {
            "bare_p50": percentile(bare_ms, 50), "bare_p99": percentile(bare_ms, 99),
            "sse_p50": percentile(sse_ms, 50), "sse_p99": percentile(sse_ms, 99),
        }  # fmt: skip
        figures["added_p99"] = figures["sse_p99"] - figures["bare_p99"]
        per_run.append(figures)
        print(f"  run {r + 1}/{runs}: bare p50 {figures['bare_p50']:.1f} ms "
              f"p99 {figures['bare_p99']:.1f} ms; SSE p50 {figures['sse_p50']:.1f} ms "
              f"p99 {figures['sse_p99']:.1f} ms", flush=True)  # fmt: skip

    def med(key: str) -> float:
        return median([f[key] for f in per_run])

    added = med("added_p99")
    per_run_added = ", ".join(f"{f['added_p99']:.1f}" for f in per_run)
    section = Section("Publish-to-SSE latency")
    section.ok = added <= TARGET_ADDED_P99_MS and missing == 0
    section.summary.append(
        f"latency: bare subscribe p50 {med('bare_p50'):.1f} ms p99 {med('bare_p99'):.1f} ms; "
        f"SSE p50 {med('sse_p50'):.1f} ms p99 {med('sse_p99'):.1f} ms; added p99 "
        f"{added:.1f} ms (target <= {TARGET_ADDED_P99_MS:.0f} ms); missing events {missing}"
    )
    section.markdown += [
        f"{n} positions published one at a time (~{GAP_S * 1000:.0f} ms apart, after "
        f"{WARMUP} warm-up ones) to the real ground service in a child process; time from "
        "`publish()` to the bare subscriber's `on_message` and to the SSE event on "
        f"`/communes/{NOCE}/events`. Median over {runs} runs of each run's percentile. "
        f"Target: added p99 ≤ {TARGET_ADDED_P99_MS:.0f} ms.",
        "",
        "| path | p50 | p99 |",
        "| --- | ---: | ---: |",
        f"| publish → bare paho subscriber | {med('bare_p50'):.1f} ms "
        f"| {med('bare_p99'):.1f} ms |",
        f"| publish → ground → SSE event | {med('sse_p50'):.1f} ms "
        f"| {med('sse_p99'):.1f} ms |",
        f"| **added by the ground** | {med('sse_p50') - med('bare_p50'):.1f} ms "
        f"| **{added:.1f} ms** |",
        "",
        f"Per-run added p99: {per_run_added} ms; "
        f"SSE events missing: {missing}.",
    ]
    return section


if __name__ == "__main__":
    print("\n".join(run(runs=1).summary))
