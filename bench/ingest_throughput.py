"""Ground ingest throughput, as a ratio to a bare paho subscriber in the same run.

For each consumer, on a fresh Mosquitto: open the consumer's persistent session, leave, have
a separate publisher queue N pre-serialised position messages (QoS 1) at the broker for it,
then start the consumer and time from its connect to the N-th message (bare: counted;
ground: stored). Both see the same broker config, the same bytes, the same queue, so the
ratio is the ground's consumer capacity against paho's on this machine.

Consumers: (a) a bare paho 2.x subscriber (VERSION2 callbacks, QoS 1, clean_session=False)
that only counts; (b) the real GroundService minus HTTP: ground.ingest.Ingest with manual
acks, ground.store.Store on a temporary SQLite file (synchronous=FULL), LiveState and the
Board's change notification. A second line does the same with batch messages of 200 items,
which is how a bus drains its backlog.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import (
    BATCH_TOPIC,
    GROUND_CLIENT_ID,
    POSITION_TOPIC,
    Counter,
    Section,
    batch_payloads,
    broker,
    ground_service,
    median,
    position_payloads,
    preload,
    wait_until,
)

N = 40_000
BATCH_ITEMS = 200
TARGET = 0.5


def bare_seconds(workdir: Path, topic: str, payloads: Sequence[bytes]) -> float:
    with broker(workdir / "broker") as b:
        preload(b.port, "bench-bare", topic, payloads)
        counter = Counter(b.port, "bench-bare", target=len(payloads))
        t0 = time.monotonic()
        counter.start()
        if not counter.done.wait(300) or counter.done_at is None:
            raise TimeoutError(f"bare subscriber counted {counter.count}/{len(payloads)}")
        counter.close()
        return counter.done_at - t0


def ground_seconds(workdir: Path, topic: str, payloads: Sequence[bytes], items: int) -> float:
    with broker(workdir / "broker") as b:
        preload(b.port, GROUND_CLIENT_ID, topic, payloads)
        service = ground_service(workdir, b.port)
        stats = service.ingest.stats
        t0 = time.monotonic()
        service.start()
        try:
            done = wait_until(lambda: stats["stored"] >= items, 600, f"{items} stored")
        finally:
            service.stop()
        if stats["stored"] != items or stats["dead_letters"]:
            raise AssertionError(f"ground stored {stats}")
        return done - t0


def run(runs: int = 3, n: int = N) -> Section:
    singles = position_payloads(n, "pos")
    batches = batch_payloads(n, BATCH_ITEMS, "bat")
    modes = {"single": (POSITION_TOPIC, singles), f"batch of {BATCH_ITEMS}": (BATCH_TOPIC, batches)}
    rates: dict[str, dict[str, list[float]]] = {m: {"bare": [], "ground": []} for m in modes}
    for r in range(runs):
        for mode, (topic, payloads) in modes.items():
            with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
                rates[mode]["bare"].append(n / bare_seconds(Path(tmp) / "bare", topic, payloads))
                rates[mode]["ground"].append(
                    n / ground_seconds(Path(tmp) / "ground", topic, payloads, n)
                )
            print(f"  run {r + 1}/{runs} {mode}: bare {rates[mode]['bare'][-1]:,.0f}/s, "
                  f"ground {rates[mode]['ground'][-1]:,.0f}/s", flush=True)  # fmt: skip

    section = Section("Ground ingest throughput")
    section.markdown += [
        f"{n:,} valid positions queued at a fresh Mosquitto for each consumer, which then "
        "empties the queue; positions/s, median of "
        f"{runs} runs (ratio: median of the per-run ratios). Target: ratio ≥ {TARGET}.",
        "",
        "| messages | bare paho (count only) | ground (validate, store, ack) | ratio "
        "| per-run ratios |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    single = rates["single"]
    for mode, rate in rates.items():
        # A bare subscriber counts 100 batch messages in no time: batches are compared
        # with the bare per-message rate, i.e. positions/s against messages/s.
        bare = single["bare"]
        ratios = [g / b for g, b in zip(rate["ground"], bare, strict=True)]
        ratio = median(ratios)
        if mode == "single":
            section.ok = ratio >= TARGET
            section.verdicts.append(section.ok)
            what, target = "1 position per message", f" (target >= {TARGET})"
        else:
            section.verdicts.append(None)  # how a draining bus is taken in: no target
            what = f"batches of {BATCH_ITEMS} positions (ratio vs bare 1-per-message)"
            target = ""
        section.summary.append(
            f"ingest, {what}: bare {median(rate['bare']):,.0f}/s, ground "
            f"{median(rate['ground']):,.0f}/s (positions), ratio {ratio:.2f}{target}"
        )
        section.markdown.append(
            f"| {what} | {median(rate['bare']):,.0f} positions/s "
            f"| {median(rate['ground']):,.0f} positions/s "
            f"| **{ratio:.2f}** | {', '.join(f'{x:.2f}' for x in ratios)} |"
        )
    section.markdown += [
        "",
        "With batches the bare subscriber only counts the "
        f"{n // BATCH_ITEMS} MQTT messages, so its rate is shown but the ratio is taken "
        "against the bare rate for one position per message: how the ground keeps up "
        "with a draining bus in positions/s compared with what a bare client takes in "
        "messages/s.",
    ]
    return section


if __name__ == "__main__":
    print("\n".join(run(runs=1).summary))
