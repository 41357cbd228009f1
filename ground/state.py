"""Live state per vehicle, built from what the buses send.

Messages can arrive out of order (a drained backlog after live data), so the state keeps
the newest position by the bus's timestamp, never the last one received. Presence is
online / offline (the retained status and Last Will) / stale (online, but no position for
too long) / unknown.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from medicobus import contract
from medicobus.motion import moving

RECENT = timedelta(minutes=10)
# Online but silent this long: stale. Longer than the bus's parked heartbeat (10 min), or a
# parked bus would look stale.
STALE_AFTER = timedelta(minutes=15)


@dataclass
class VehicleState:
    vehicle: str
    connection: str = "unknown"  # the last status received: online / offline (Last Will)
    connection_ts: datetime | None = None  # when that status was received
    last_seen: datetime | None = None  # when the ground last heard from the bus
    position: contract.Position | None = None
    # (UTC time, speed) of the recent positions: plain tuples of untracked values, which the
    # garbage collector leaves alone (a thousand buses' models made its full passes pause
    # every thread for a third of a second).
    recent: deque[tuple[datetime, float | None]] = field(
        default_factory=lambda: deque(maxlen=200))
    arrivals: dict[str, datetime] = field(default_factory=dict)  # visit id -> time
    departures: dict[str, datetime] = field(default_factory=dict)
    queues: dict[str, contract.QueueState] = field(default_factory=dict)  # visit -> latest
    # (sensor, quantity) -> the latest sample: (time, value or None when flagged, flag)
    readings: dict[tuple[str, str], tuple[datetime, float | None, str | None]] = field(
        default_factory=dict)
    codes: dict[str, tuple[datetime, list[str]]] = field(default_factory=dict)  # by sensor
    # average_speed's answers until the next position: every page and forecast asks.
    _speeds: dict[bool, float | None] = field(default_factory=dict, repr=False)

    def presence(self, now: datetime, stale_after: timedelta) -> str:
        if self.connection == "offline":
            return "offline"
        if self.last_seen is None:
            return "unknown"
        if now - self.last_seen > stale_after:
            return "stale"
        return "online"

    def average_speed(self, moving_only: bool = False) -> float | None:
        """Mean speed over the last ten minutes of positions, in m/s; `moving_only` leaves
        out the times it stood still (the depot before leaving, a junction)."""
        if self.position is None:
            return None
        cache = self._speeds  # the one of this position, even if another arrives meanwhile
        if moving_only in cache:
            return cache[moving_only]
        since = self.position.ts - RECENT
        # A copy: the pipeline appends while pages read (a deque must not change under a loop).
        speeds = [speed for ts, speed in tuple(self.recent) if ts >= since and speed is not None
                  and (moving(speed) or not moving_only)]  # fmt: skip
        average = cache[moving_only] = sum(speeds) / len(speeds) if speeds else None
        return average


class LiveState:
    def __init__(self) -> None:
        self._vehicles: dict[str, VehicleState] = {}
        self._lock = threading.Lock()

    def get(self, vehicle: str) -> VehicleState:
        with self._lock:
            return self._get(vehicle)

    def _get(self, vehicle: str) -> VehicleState:
        s = self._vehicles.get(vehicle)
        if s is None:
            s = self._vehicles[vehicle] = VehicleState(vehicle)
        return s

    def apply(self, message: contract.Position | contract.VisitEvent | contract.Status
              | contract.TicketEvent | contract.QueueState | contract.Reading,
              received: datetime) -> None:
        with self._lock:
            s = self._get(message.vehicle)
            s.last_seen = max(s.last_seen or received, received)
            if isinstance(message, contract.Status):
                # In the order the broker delivers them, not by their timestamps: a Last
                # Will carries the time it was set, at connection, before "online".
                s.connection, s.connection_ts = message.state, received
            elif isinstance(message, contract.Position):
                s.recent.append((message.ts.astimezone(UTC), message.speed))
                s._speeds = {}
                if s.position is None or message.ts > s.position.ts:
                    s.position = message
            elif isinstance(message, contract.VisitEvent):
                times = s.arrivals if message.event == "arrival" else s.departures
                times.setdefault(message.visit, message.ts)
            elif isinstance(message, contract.QueueState):
                known = s.queues.get(message.visit)
                if known is None or message.ts >= known.ts:
                    s.queues[message.visit] = message
            elif isinstance(message, contract.Reading):
                _apply_reading(s, message)
            # A TicketEvent is history for the funders' figures; the QueueState that
            # follows it carries what the live view needs.


def _apply_reading(s: VehicleState, r: contract.Reading) -> None:
    for quantity in {*r.values, *r.flags}:
        key = (r.sensor, quantity)
        if key not in s.readings or r.ts >= s.readings[key][0]:
            s.readings[key] = (r.ts, r.values.get(quantity), r.flags.get(quantity))
    if r.codes is not None and (r.sensor not in s.codes or r.ts >= s.codes[r.sensor][0]):
        s.codes[r.sensor] = (r.ts, list(r.codes))
