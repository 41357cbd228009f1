"""The ground at fleet scale: a thousand generated vehicles, each with 4 or 5 stops of its
own visited twice a week, on a real Mosquitto, with the public pages' live streams open.

- Fleet check: `medicobus ground --config … --check` on the generated fleet file, wall time
  (target: a few seconds).
- Ingest lag: a publisher process sends one position per vehicle per second, paced (message
  k leaves at t0 + k / rate); every 100 ms the count of positions the ground has stored,
  S, says how far behind it is: lag = now − (t0 + S / rate). p99 over the run (target
  < 1 s). A second run at one position per vehicle every 5 s.
- Pages under that load: `GET /api/v1/stops` (every commune) and a commune's page, from a
  client in another process, latency p99 (target ≤ 100 ms each), while 200 SSE streams
  of commune pages are open and woken by every batch that concerns them.

The ground runs in a child process (bench.common.ground_process) on the generated fleet,
its clock on Monday 08:00 so that the day's plans are full.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    MONDAY_8AM,
    GroundJob,
    Section,
    bare_client,
    broker,
    free_port,
    ground_process,
    percentile,
    start_child,
)
from medicobus import contract

VEHICLES = 1000
STREAMS = 200
RUN_S = 40.0
WARMUP_S = 5.0
TARGET_LAG_S = 1.0
TARGET_PAGE_MS = 100.0
TARGET_CHECK_S = 10.0
DAYS = ["lundi", "mardi", "mercredi", "jeudi", "vendredi"]


def fleet_toml(vehicles: int) -> str:
    """A fleet of `vehicles` buses; bus i serves 4 or 5 communes of its own, each twice a
    week (a morning and an afternoon), within a few kilometres of one another."""
    rnd = random.Random(1)
    lines = ['timezone = "Europe/Paris"', ""]
    for v in range(vehicles):
        lines += ["[[vehicles]]", f'id = "bus-{v:04d}"', f'name = "Médicobus {v}"', ""]
    for v in range(vehicles):
        lat, lon = 43.5 + rnd.random() * 5, -0.5 + rnd.random() * 6
        for s in range(4 + v % 2):
            lines += ["[[stops]]", f'id = "s{v:04d}-{s}"', f'commune = "Commune {v}-{s}"',
                      f'insee = "{insee(v, s)}"', f"lat = {lat + s * 0.03:.5f}",
                      f"lon = {lon + s * 0.03:.5f}", ""]  # fmt: skip
            for day, half, arrive, depart in ((DAYS[s % 5], "am", "09:00", "11:30"),
                                              (DAYS[(s + 2) % 5], "pm", "14:00", "16:30")):
                lines += ["[[timetable]]", f'vehicle = "bus-{v:04d}"', f'stop = "s{v:04d}-{s}"',
                          f'day = "{day}"', f'half = "{half}"', f'arrive = "{arrive}"',
                          f'depart = "{depart}"', ""]  # fmt: skip
    return "\n".join(lines)


def insee(vehicle: int, stop: int) -> str:
    return f"{10000 + vehicle * 5 + stop:05d}"


def check_seconds(workdir: Path, fleet: Path) -> float:
    config = workdir / "ground.toml"
    config.write_text(f'fleet = "{fleet}"\ndatabase = "{workdir / "check.db"}"\n')
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "medicobus.cli", "ground", "--config", str(config),
                    "--check"], check=True, capture_output=True, timeout=600)
    return time.monotonic() - t0


def publisher_process(port: int, vehicles: int, rate: float, seconds: float, ready: Any,
                      stop: Any, out: Any) -> None:
    """Child process: positions for every vehicle in turn, `rate` a second, paced."""
    client = bare_client(port, "bench-fleet", persistent=False)
    client.connect("127.0.0.1", port)
    client.loop_start()
    topics = [contract.topic(f"bus-{v:04d}", contract.Channel.POSITION) for v in range(vehicles)]
    ready.set()
    total = int(rate * seconds)
    t0 = time.monotonic()
    out.put(t0)
    for k in range(total):
        delay = t0 + k / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        v = k % vehicles
        ts = MONDAY_8AM + timedelta(seconds=time.monotonic() - t0)
        n = k // vehicles  # the vehicle's n-th position: each drives on, ~11 m at a time
        client.publish(topics[v], contract.Position(
            id=f"p{k:09d}", vehicle=f"bus-{v:04d}", ts=ts, lat=46 + v * 1e-3 + (n % 97) * 1e-4,
            lon=2 + (n % 89) * 1e-4, speed=12.0, heading=90.0, acc=5.0).to_json(), qos=1)
    stop.wait(120)
    client.loop_stop()


def sse_process(port: int, communes: list[str], ready: Any, stop: Any, out: Any) -> None:
    """Child process: the live streams of these communes' pages, read and counted."""
    async def one(insee_code: str, counts: list[int]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /communes/{insee_code}/events HTTP/1.1\r\nHost: bench\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        await writer.drain()
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"data:"):
                counts[0] += 1

    async def main() -> None:
        counts = [0]
        tasks = [asyncio.create_task(one(c, counts)) for c in communes]
        await asyncio.sleep(1.0)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.2)
        out.put(counts[0])
        for t in tasks:
            t.cancel()

    asyncio.run(main())


def one_run(workdir: Path, fleet: Path, rate: float) -> dict[str, list[float]]:
    with broker(workdir / "broker") as b:
        http_port = free_port()
        ground = start_child(ground_process, GroundJob(str(workdir), b.port, http_port,
                                                       fleet=str(fleet)))  # fmt: skip
        # Communes visited on Monday, whose pages the streams watch.
        monday = [insee(v, s) for v in range(VEHICLES) for s in (0, 3) if s < 4 + v % 2]
        streams = start_child(sse_process, http_port, monday[:STREAMS])
        publisher = start_child(publisher_process, b.port, VEHICLES, rate, RUN_S)
        t0 = publisher.out.get(timeout=30)
        lags: list[float] = []
        pages: dict[str, list[float]] = {"stops": [], "commune": []}
        done = threading.Event()
        prober = threading.Thread(target=_probe, args=(http_port, monday[0], pages, done))
        prober.start()
        db = sqlite3.connect(f"file:{workdir / 'ground.db'}?mode=ro", uri=True)
        end = t0 + RUN_S
        while time.monotonic() < end:
            time.sleep(0.1)
            stored = db.execute("SELECT COUNT(*) FROM positions").fetchone()[0]
            now = time.monotonic()
            if now - t0 >= WARMUP_S:
                lags.append(max(0.0, now - (t0 + stored / rate)))
        done.set()
        prober.join()
        streams.stop.set()
        events = streams.out.get(timeout=30)
        db.close()
        for child in (publisher, streams, ground):
            child.finish()
    if events < STREAMS:
        raise AssertionError(f"the {STREAMS} streams got only {events} events")
    return {"lag": lags, **pages}


def _probe(port: int, commune: str, pages: dict[str, list[float]], done: threading.Event
           ) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        time.sleep(WARMUP_S)
        while not done.is_set():
            for name, url in (("stops", "/api/v1/stops"), ("commune", f"/communes/{commune}")):
                t = time.monotonic()
                r = http.get(url)
                pages[name].append((time.monotonic() - t) * 1000)
                r.raise_for_status()
            time.sleep(0.25)


def run(runs: int = 1) -> Section:
    section = Section("Fleet scale")
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        workdir = Path(tmp)
        fleet = workdir / "fleet.toml"
        fleet.write_text(fleet_toml(VEHICLES), encoding="utf-8")
        check = check_seconds(workdir, fleet)
        print(f"  fleet check: {check:.1f} s", flush=True)
        results = {}
        for label, rate in (("1/s", VEHICLES / 1.0), ("1/5 s", VEHICLES / 5.0)):
            run_dir = workdir / label.replace("/", "-").replace(" ", "")
            run_dir.mkdir()
            results[label] = one_run(run_dir, fleet, rate)
            r = results[label]
            print(f"  {label}: lag p99 {percentile(r['lag'], 99):.2f} s, /api/v1/stops p99 "
                  f"{percentile(r['stops'], 99):.0f} ms, commune p99 "
                  f"{percentile(r['commune'], 99):.0f} ms", flush=True)  # fmt: skip
    ok_check = check <= TARGET_CHECK_S
    section.summary.append(f"fleet file of {VEHICLES} vehicles checked in {check:.1f} s "
                           f"(target <= {TARGET_CHECK_S:g} s)")
    section.verdicts.append(ok_check)
    section.markdown += [
        f"{VEHICLES:,} generated vehicles (4–5 stops each, 2 visits a week per stop), real "
        f"Mosquitto, {STREAMS} commune pages' SSE streams open, {RUN_S:g} s per run after "
        f"{WARMUP_S:g} s of warm-up; the ground in its own process. Fleet file check: "
        f"**{check:.1f} s**.",
        "",
        "| positions | ingest lag p99 | `/api/v1/stops` p50 / p99 | commune page p50 / p99 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, r in results.items():
        lag, stops, commune = (percentile(r["lag"], 99), percentile(r["stops"], 99),
                               percentile(r["commune"], 99))  # fmt: skip
        ok = lag < TARGET_LAG_S and stops <= TARGET_PAGE_MS and commune <= TARGET_PAGE_MS
        section.verdicts.append(ok)
        section.summary.append(
            f"{VEHICLES} vehicles at 1 position per vehicle per {label.split('/')[1]}: lag "
            f"p99 {lag:.2f} s (target < {TARGET_LAG_S:g}), /api/v1/stops p99 {stops:.0f} ms, "
            f"commune page p99 {commune:.0f} ms (targets <= {TARGET_PAGE_MS:g} ms)")
        section.markdown.append(
            f"| one per vehicle per {label.split('/')[1]} | {lag:.2f} s "
            f"| {percentile(r['stops'], 50):.0f} / **{stops:.0f} ms** "
            f"| {percentile(r['commune'], 50):.0f} / **{commune:.0f} ms** |")
    section.ok = all(v for v in section.verdicts if v is not None)
    return section


if __name__ == "__main__":
    print("\n".join(run().summary))
