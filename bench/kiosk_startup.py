"""Kiosk start-up: from process start to the first interactive screen, and memory.

    .venv/bin/python -m bench.kiosk_startup [--runs N]

Each run starts a fresh process on a pseudo-terminal (so Textual uses its real Linux
driver, as under foot on the bus) and measures, with `time.monotonic()` (one system-wide
clock on Linux, so the child's reading compares with ours):
- the kiosk: `python -m onboard.kiosk --config ...` against a data directory holding a
  current visit with 100 bookings; the app writes the time its welcome screen is ready
  (Textual's Ready event: mounted, painted, taking input) to MEDICOBUS_KIOSK_READY_FILE and
  exits (MEDICOBUS_KIOSK_EXIT_ON_READY);
- the baseline: a bare Textual App with one Static, measured the same way in the same run.
Memory is each child's maximum resident set size from `os.wait4` (the per-child form of
`getrusage(RUSAGE_CHILDREN)`). Targets: ready within 1.5 s, at most 80 MB.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

TARGET_S = 1.5
TARGET_MB = 80.0
READY_ENV = "MEDICOBUS_KIOSK_READY_FILE"
EXIT_ENV = "MEDICOBUS_KIOSK_EXIT_ON_READY"
VEHICLE = "bench-kiosk"


def baseline_child() -> None:
    """A bare Textual app with one Static: what any Textual program costs."""
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Static("Hello")

        def on_ready(self) -> None:
            Path(os.environ[READY_ENV]).write_text(f"{time.monotonic()}\n")
            self.exit()

    Bare().run()


def prepare(workdir: Path) -> Path:
    """An onboard config whose data directory holds a visit happening now, 100 bookings."""
    from medicobus import contract
    from onboard.plan import PlanStore

    key = b"bench-key"
    (workdir / "checkin.key").write_bytes(key)
    now = datetime.now(UTC)
    day = now.date()
    visit = contract.PlannedVisit(
        visit=f"{day}-bench", stop="bench-stop", commune="Bench", insee="61001", lat=48.5,
        lon=0.5, radius_m=100, arrive=now - timedelta(hours=1), depart=now + timedelta(hours=3))
    store = PlanStore(workdir / "data" / "plan.db")
    store.save(contract.Plan(vehicle=VEHICLE, ts=now, day=day, visits=[visit]))
    store.save_appointments(contract.Appointments(vehicle=VEHICLE, ts=now, day=day, items=[
        contract.BookedAppointment(
            appointment=f"RDV-{i:04d}", visit=visit.visit, time=now + timedelta(minutes=5 * i),
            identity=contract.identity_digest(key, day, f"Name{i}", datetime(1950, 1, 1).date()))
        for i in range(100)]))
    store.db.close()
    config = workdir / "onboard.toml"
    config.write_text(f'vehicle = "{VEHICLE}"\ndata_dir = "{workdir / "data"}"\n\n'
                      f'[kiosk]\nkey_file = "{workdir / "checkin.key"}"\n')
    return config


@dataclass
class Run:
    ready_s: float  # process start -> first screen ready
    exit_s: float  # process start -> process gone
    max_rss_mb: float


def measure(command: list[str], workdir: Path) -> Run:
    ready_file = workdir / "ready"
    ready_file.unlink(missing_ok=True)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 80, 0, 0))
    env = {**os.environ, READY_ENV: str(ready_file), EXIT_ENV: "1", "TERM": "xterm-256color"}

    def drain() -> None:  # a terminal that never reads would block the app's writes
        try:
            while os.read(master, 65536):
                pass
        except OSError:
            pass

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    t0 = time.monotonic()
    proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)
    os.close(slave)
    _, status, usage = os.wait4(proc.pid, 0)
    t_exit = time.monotonic()
    proc.returncode = os.waitstatus_to_exitcode(status)
    os.close(master)
    reader.join(timeout=2)
    if proc.returncode != 0 or not ready_file.exists():
        raise RuntimeError(f"{command} exited with {proc.returncode} without getting ready")
    ready = float(ready_file.read_text())
    return Run(ready - t0, t_exit - t0, usage.ru_maxrss / 1024)  # ru_maxrss: KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="kiosk start-up time and memory")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_child:
        baseline_child()
        return 0

    with tempfile.TemporaryDirectory(prefix="kiosk-bench-") as tmp:
        workdir = Path(tmp)
        config = prepare(workdir)
        kiosk_cmd = [sys.executable, "-m", "onboard.kiosk", "--config", str(config)]
        bare_cmd = [sys.executable, "-m", "bench.kiosk_startup", "--baseline-child"]
        measure(kiosk_cmd, workdir)  # warm the page cache and the bytecode caches once
        measure(bare_cmd, workdir)
        kiosk: list[Run] = []
        bare: list[Run] = []
        for _ in range(args.runs):  # interleaved, so drifts in machine load hit both
            kiosk.append(measure(kiosk_cmd, workdir))
            bare.append(measure(bare_cmd, workdir))

    def med(runs: list[Run], field: str) -> float:
        return statistics.median(getattr(r, field) for r in runs)

    k_ready, b_ready = med(kiosk, "ready_s"), med(bare, "ready_s")
    k_rss, b_rss = med(kiosk, "max_rss_mb"), med(bare, "max_rss_mb")
    print(f"Kiosk start-up, median of {args.runs} runs (after one warm-up), "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("| process | to first screen ready | to exit | max RSS |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| bare Textual app (one Static) | {b_ready:.2f} s | {med(bare, 'exit_s'):.2f} s "
          f"| {b_rss:.1f} MB |")
    print(f"| kiosk (`python -m onboard.kiosk`) | {k_ready:.2f} s | "
          f"{med(kiosk, 'exit_s'):.2f} s | {k_rss:.1f} MB |")
    print(f"| kiosk − bare | +{k_ready - b_ready:.2f} s | | +{k_rss - b_rss:.1f} MB |")
    print("per-run kiosk ready: " + ", ".join(f"{r.ready_s:.2f}" for r in kiosk) + " s; "
          "max RSS: " + ", ".join(f"{r.max_rss_mb:.1f}" for r in kiosk) + " MB")
    ok_time, ok_mem = k_ready <= TARGET_S, k_rss <= TARGET_MB
    print(f"targets: ready <= {TARGET_S} s: {'met' if ok_time else 'NOT met'}; "
          f"max RSS <= {TARGET_MB:.0f} MB: {'met' if ok_mem else 'NOT met'}")
    return 0 if ok_time and ok_mem else 1


if __name__ == "__main__":
    sys.exit(main())
