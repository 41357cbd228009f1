"""A bus's outbox and link in a process of its own, for the SIGKILL test.

    python -m tests.bus_process DATA_DIR BROKER_PORT FIRST COUNT

puts positions FIRST..FIRST+COUNT-1 into the outbox at a steady pace, printing each id once
`put` has returned (the moment the bus counts it as safe), while the link drains them. With
COUNT 0 it only drains what a previous run left behind.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from medicobus.mqtt import BrokerSettings
from onboard.link import Link
from onboard.outbox import Outbox
from tests.harness import VEHICLE, position


def main(data_dir: str, port: str, first: str, count: str) -> None:
    outbox = Outbox(Path(data_dir) / "outbox.db")
    link = Link(BrokerSettings(port=int(port)), VEHICLE, outbox, lambda plan: None)
    link.start()
    for i in range(int(first), int(first) + int(count)):
        outbox.put(position(i))
        print(f"pos{i:08d}", flush=True)
        time.sleep(0.002)
    while True:  # keep draining until killed or empty
        print(f"left {outbox.count()}", flush=True)
        time.sleep(0.2)


if __name__ == "__main__":
    main(*sys.argv[1:])
