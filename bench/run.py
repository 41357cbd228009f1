"""Run the benchmarks, print their figures and rewrite the results in docs/performance.md.

    .venv/bin/python -m bench.run [--runs 3] [--only ingest,sse,drain] [--no-write]

Only the part of docs/performance.md between the results markers is rewritten; the intro
above it is kept (and written if the file or the markers are missing).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import backlog_drain, eta_accuracy, fleet_scale, ingest_throughput, sse_latency
from bench.common import Section, machine_info, quiet_logs

DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
START = "<!-- bench results: written by `python -m bench.run`, do not edit below -->"
END = "<!-- end of bench results -->"

INTRO = """\
# Performance

Four benchmarks (`make bench`, i.e. `.venv/bin/python -m bench.run`, a few minutes on
two cores) measure the product against a bare baseline **measured in the same run on the
same machine**: a bare paho-mqtt 2.x client doing the least possible with the same
messages on a Mosquitto with the same configuration (the production queueing and flow
control: `max_queued_messages 0`, `max_inflight_messages 100`; logging at errors only). The
figures to read are the ratios and differences, which travel between machines better than
absolute rates.

- **Ingest throughput** (`bench/ingest_throughput.py`): N positions queued at the broker
  for a persistent session, then emptied by (a) a bare subscriber that only counts them,
  (b) the real ground ingest (validation, SQLite store with `synchronous=FULL`, live
  state, acknowledgement after commit). Target: ratio ≥ 0.5.
- **Publish-to-SSE latency** (`bench/sse_latency.py`): the real ground service with its
  web server in a child process; one position at a time, from `publish()` to the Server-
  Sent Event of the commune page, against `publish()` to a bare subscriber's
  `on_message`. Target: ≤ 50 ms added at p99.
- **Backlog drain** (`bench/backlog_drain.py`): 100,000 positions in the bus's durable
  outbox, drained by the real `Link` into the real ground (separate processes), checked
  for zero loss and zero duplicates; against bare paho publishing the same payloads one
  per message to a bare subscriber.

These machines are noisy (shared virtual CPUs): each figure is the median of 3 runs, and
the per-run values are shown so the spread can be judged. A single run of a benchmark:
`.venv/bin/python -m bench.ingest_throughput` (or `sse_latency`, `backlog_drain`).

"""

BENCHES: dict[str, Callable[[int], Section]] = {
    "ingest": lambda runs: ingest_throughput.run(runs),
    "sse": lambda runs: sse_latency.run(runs),
    "drain": lambda runs: backlog_drain.run(runs),
    "fleet": lambda runs: fleet_scale.run(),  # one run: several minutes already
    "eta": lambda runs: eta_accuracy.run(),  # deterministic: one run
}


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=DOC.parent.parent, timeout=5)  # fmt: skip
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def results_markdown(sections: list[Section], seconds: float, runs: int) -> str:
    info = machine_info()
    lines = [
        START,
        "## Results",
        "",
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {_git_commit()} "
        "(plus the working tree); "
        f"{info['nproc']} CPUs (`nproc`), {info['cpu']}, Python {info['python']}, "
        f"{info['system']}; {runs} runs each; the whole run took {seconds:.0f} s.",
        "",
        "| figure | result | target met |",
        "| --- | --- | --- |",
    ]
    marks = {True: "yes", False: "**no**", None: "(no target)"}
    for s in sections:
        for i, line in enumerate(s.summary):
            lines.append(f"| {s.title} | {line} | {marks[s.verdict(i)]} |")
    for s in sections:
        lines += ["", f"### {s.title}", "", *s.markdown]
    lines += [END, ""]
    return "\n".join(lines)


def write_doc(results: str) -> None:
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if START in text and END in text:
        head = text[: text.index(START)]
        tail = text[text.index(END) + len(END) :].lstrip("\n")
    else:
        head, tail = (text.rstrip("\n") + "\n\n") if text else INTRO, ""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(head + results + tail, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--only", default=",".join(BENCHES),
                        help=f"comma-separated subset of {','.join(BENCHES)}")
    parser.add_argument("--no-write", action="store_true", help="leave docs/ alone")
    args = parser.parse_args(argv)
    quiet_logs()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    info = machine_info()
    print(f"machine: {info['nproc']} CPUs, {info['cpu']}, Python {info['python']}")
    t0 = time.monotonic()
    sections = []
    for name in chosen:
        print(f"{name}:", flush=True)
        sections.append(BENCHES[name](args.runs))
    seconds = time.monotonic() - t0
    print()
    marks = {True: "ok  ", False: "MISS", None: "    "}
    for s in sections:
        for i, line in enumerate(s.summary):
            print(f"{marks[s.verdict(i)]} {line}")
    if not args.no_write:
        write_doc(results_markdown(sections, seconds, args.runs))
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
