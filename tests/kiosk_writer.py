"""The kiosk's side of the shared outbox, in a process of its own.

    python -m tests.kiosk_writer OUTBOX_PATH

reads commands on stdin, one a line, and answers each on stdout once done:
  put FIRST COUNT  puts ticket events tkt<FIRST>..tkt<FIRST+COUNT-1>; answers "done"
  put1 I           puts ticket event tkt<I>; answers the CLOCK_MONOTONIC time after `put`
  count            answers this process's `Outbox.count()`
It exits at the end of its input.
"""

from __future__ import annotations

import sys
import time

from medicobus import contract
from onboard.outbox import Outbox
from tests.harness import MONDAY_8AM, VEHICLE


def ticket(i: int) -> contract.TicketEvent:
    return contract.TicketEvent(id=f"tkt{i:08d}", vehicle=VEHICLE, ts=MONDAY_8AM,
                                visit="2026-11-23/noce/am", ticket=i % 9999 + 1,
                                event="checked_in")


def main(path: str) -> None:
    outbox = Outbox(path)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "put":
            first, count = map(int, args)
            for i in range(first, first + count):
                outbox.put(ticket(i))
            print("done", flush=True)
        elif command == "put1":
            outbox.put(ticket(int(args[0])))
            print(time.monotonic(), flush=True)
        elif command == "count":
            print(outbox.count(), flush=True)
    outbox.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
