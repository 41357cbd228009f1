"""A bus's outbox and link in a process of its own, run inside the bus's network namespace
by tests/test_field_network.py:

    python -m tests.field_bus DATA_DIR HOST PORT STRETCH SPEED

puts the messages of STRETCH ("hour": an hour of driving, a position a second; "day": a
whole day, a position every 30 s driving and 10 min parked) into the outbox, SPEED times
faster than the bus made them (0: as fast as the outbox takes them), while the link drains
them to the broker at HOST:PORT. Then, for "day", it goes on putting a live position every
LIVE_EVERY_S until SIGUSR1 (then prints `parked ...`). It prints `fed N` once everything is
in, `live ID` for each live position, and `left ROWS CONNECTED` every half second. SIGTERM
stops it cleanly.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

from medicobus.clock import AcceleratedClock
from medicobus.mqtt import BrokerSettings
from onboard.link import Link
from onboard.outbox import Outbox
from tests import field_day
from tests.harness import VEHICLE

LIVE_EVERY_S = 0.25
STRETCHES = {"hour": (field_day.drive_hour, 1, 1), "day": (field_day.whole_day, 30, 600)}


_SAYING = threading.Lock()


def say(line: str) -> None:
    """One whole line to the test: print() from two threads may interleave a line's text
    and its newline, which the test would read as a blank line and a line run together."""
    with _SAYING:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def main(data_dir: str, host: str, port: str, stretch: str, speed: str) -> None:
    window, moving_every_s, parked_every_s = STRETCHES[stretch]
    start, end = window()
    messages = field_day.messages(start, end, moving_every_s, parked_every_s)
    stop, parked = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: parked.set())
    outbox = Outbox(Path(data_dir) / "outbox.db")
    link = Link(BrokerSettings(host=host, port=int(port)), VEHICLE, outbox, lambda plan: None,
                clock=AcceleratedClock(end, 1.0))
    link.start()
    threading.Thread(target=_report, args=(outbox, link, stop), daemon=True).start()

    began = time.monotonic()
    for message in messages:
        if float(speed) > 0:  # wait for when the bus made it, in accelerated time
            due = began + (message.ts - start).total_seconds() / float(speed)
            if stop.wait(max(0.0, due - time.monotonic())):
                break
        outbox.put(message)
    say(f"fed {len(messages)}")

    n = 0
    while stretch == "day" and not parked.is_set() and not stop.wait(LIVE_EVERY_S):
        live = field_day.live_position(n, end)
        outbox.put(live)
        say(f"live {live.id}")
        n += 1
    say(f"parked after {n} live positions")
    stop.wait()
    link.stop()
    outbox.close()


def _report(outbox: Outbox, link: Link, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        say(f"left {outbox.count()} {int(link.connected.is_set())}")


if __name__ == "__main__":
    main(*sys.argv[1:])
