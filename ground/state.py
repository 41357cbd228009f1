"""Live state per vehicle, built from what the buses send.

Messages can arrive out of order (a drained backlog after live data), so the state keeps
the newest position by the bus's timestamp, never the last one received. A message is
never taken to be newer than when it reached the ground, though: one dated ahead (a bus
whose clock is fast, within what the pipeline lets through) must not hide the ones that
follow it. Presence is online / offline (the retained status and Last Will) / stale
(online, but no position for too long) / unknown.

What is kept per visit and per sensor expires (`KEEP_VISITS`, `KEEP_READINGS`) and is
capped, the newest kept, so a bus sending ever new keys cannot grow the ground's memory
without end (a flood of invented quantities may push out a real one until its sensor's
next reading).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from medicobus import contract
from medicobus.motion import moving, too_fast

K = TypeVar("K")
RECENT = timedelta(minutes=10)
# Online but silent this long: stale. Longer than the bus's parked heartbeat (10 min), or a
# parked bus would look stale.
STALE_AFTER = timedelta(minutes=15)
KEEP_VISITS = timedelta(days=3)  # a visit's arrival, departure and queue: today's and recent
KEEP_READINGS = timedelta(days=7)  # a quantity no sensor has sent for a week is gone
MAX_VISITS = 200
MAX_READINGS = 400
MAX_SENSORS = 40  # sensors whose trouble codes are kept
# A day of positions as the bus reports them (every 100 m or turn driving, every 10 min
# parked): about 1,500 for 150 km.
TRACK_POINTS = 4000
PRUNE_EVERY = 1024  # messages of one vehicle: a count, cheaper than asking the time


@dataclass
class VehicleState:
    vehicle: str
    connection: str = "unknown"  # the last status received: online / offline (Last Will)
    connection_ts: datetime | None = None  # when that status was received
    last_seen: datetime | None = None  # when the ground last heard from the bus
    position: contract.Position | None = None
    # Its time, never later than it was received, then its own time (which orders two
    # messages received at once): what a newer position must exceed.
    position_at: tuple[datetime, datetime] | None = None
    # A newer position too far from `position` to be true (medicobus.motion.too_fast) is held
    # back here; the next one that agrees with it confirms it, one that agrees with
    # `position` replaces it: one wild fix never reaches a page.
    held_back: tuple[contract.Position, datetime] | None = None  # and its time, as position_at
    held_back_count: int = 0
    # (UTC time, speed) of the recent positions: plain tuples of untracked values, which the
    # garbage collector leaves alone (a thousand buses' models made its full passes pause
    # every thread for a third of a second).
    recent: deque[tuple[datetime, float | None]] = field(
        default_factory=lambda: deque(maxlen=200))
    # (UTC time, lat, lon, speed) of the day's positions, in their order (a backlog's older
    # ones are left out): what ground/progress.py infers the day's progress from. `moves`
    # counts what was ever appended, so a reader knows where it left off.
    track: deque[tuple[datetime, float, float, float | None]] = field(
        default_factory=lambda: deque(maxlen=TRACK_POINTS))
    moves: int = 0
    progress: object | None = field(default=None, repr=False)  # ground/progress.py's
    arrivals: dict[str, datetime] = field(default_factory=dict)  # visit id -> time
    departures: dict[str, datetime] = field(default_factory=dict)
    queues: dict[str, contract.QueueState] = field(default_factory=dict)  # visit -> latest
    queues_at: dict[str, datetime] = field(default_factory=dict)  # as position_at
    # (sensor, quantity) -> the latest sample: (time, value or None when flagged, flag), the
    # time never later than it was received
    readings: dict[tuple[str, str], tuple[datetime, float | None, str | None]] = field(
        default_factory=dict)
    codes: dict[str, tuple[datetime, list[str]]] = field(default_factory=dict)  # by sensor
    # average_speed's answers until the next position: every page and forecast asks.
    _speeds: dict[bool, float | None] = field(default_factory=dict, repr=False)
    _applied: int = field(default=0, repr=False)
    # Messages set aside because their time was outside the ground's window (ground/timebounds)
    off_clock: int = 0
    off_clock_last: tuple[datetime, timedelta] | None = None  # (received, bus time - received)

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


@dataclass(frozen=True)
class Followed:
    """A ticket a phone follows, as the latest queue of its visit lists it."""

    vehicle: str
    queue: contract.QueueState
    ticket: contract.FollowedTicket


class LiveState:
    def __init__(self) -> None:
        self._vehicles: dict[str, VehicleState] = {}
        self._lock = threading.Lock()
        # ticket_ref -> (vehicle, visit): the tickets of each visit's latest queue only, so
        # a ticket seen, absent or of a pruned visit is no longer found.
        self._followed: dict[str, tuple[str, str]] = {}

    def followed(self, ref: str) -> Followed | None:
        """The ticket under this reference in its visit's latest queue, if it is there."""
        with self._lock:
            where = self._followed.get(ref)
            if where is None:
                return None
            queue = self._vehicles[where[0]].queues.get(where[1])
            ticket = next((t for t in queue.tickets or () if t.ref == ref), None) \
                if queue is not None else None  # fmt: skip
            return None if queue is None or ticket is None else Followed(where[0], queue, ticket)

    def _follow(self, vehicle: str, old: contract.QueueState | None,
                new: contract.QueueState | None) -> None:
        if old is not None:
            for t in old.tickets or ():
                if self._followed.get(t.ref) == (vehicle, old.visit):
                    del self._followed[t.ref]
        if new is not None:
            for t in new.tickets or ():
                self._followed[t.ref] = (vehicle, new.visit)

    def get(self, vehicle: str) -> VehicleState:
        with self._lock:
            return self._get(vehicle)

    def _get(self, vehicle: str) -> VehicleState:
        s = self._vehicles.get(vehicle)
        if s is None:
            s = self._vehicles[vehicle] = VehicleState(vehicle)
        return s

    def apply(self, message: contract.Position | contract.VisitEvent | contract.Status
              | contract.TicketEvent | contract.QueueState | contract.Reading
              | contract.VisitSummary, received: datetime) -> None:
        with self._lock:
            s = self._get(message.vehicle)
            s.last_seen = max(s.last_seen or received, received)
            at = min(message.ts, received)
            if isinstance(message, contract.Status):
                # In the order the broker delivers them, not by their timestamps: a Last
                # Will carries the time it was set, at connection, before "online".
                s.connection, s.connection_ts = message.state, received
            elif isinstance(message, contract.Position):
                _apply_position(s, message, at)
            elif isinstance(message, contract.VisitEvent):
                times = s.arrivals if message.event == "arrival" else s.departures
                times.setdefault(message.visit, message.ts)
            elif isinstance(message, contract.QueueState):
                known = s.queues_at.get(message.visit)
                if known is None or at >= known:
                    self._follow(s.vehicle, s.queues.get(message.visit), message)
                    s.queues[message.visit], s.queues_at[message.visit] = message, at
            elif isinstance(message, contract.Reading):
                _apply_reading(s, message, at)
            # A TicketEvent or a VisitSummary is history for the funders' figures; the
            # QueueState that follows a ticket carries what the live view needs.
            s._applied += 1
            if s._applied % PRUNE_EVERY == 0:
                for visit in _prune(s, received):
                    self._follow(s.vehicle, visit, None)

    def note_off_clock(self, vehicle: str, offset: timedelta, received: datetime) -> None:
        """A message of `vehicle` was set aside: its clock was `offset` from the ground's."""
        with self._lock:
            s = self._get(vehicle)
            s.off_clock += 1
            s.off_clock_last = (received, offset)


def _apply_position(s: VehicleState, p: contract.Position, at: datetime) -> None:
    newer = s.position_at is None or (at, p.ts) > s.position_at
    wild = newer and s.position is not None and s.position_at is not None \
        and _jump(s.position, s.position_at[0], p, at)
    if wild and (s.held_back is None or _jump(*s.held_back, p, at)):
        s.held_back = (p, at)
        s.held_back_count += 1
        return
    if newer:
        s.position, s.position_at, s.held_back = p, (at, p.ts), None
        s.track.append((p.ts.astimezone(UTC), p.lat, p.lon, p.speed))
        s.moves += 1
    s.recent.append((p.ts.astimezone(UTC), p.speed))
    s._speeds = {}


def _jump(a: contract.Position, a_at: datetime, b: contract.Position, b_at: datetime) -> bool:
    """Judged on the bus's own times while they go forward (a backlog, a replay keep their
    spacing whenever they arrive); on the times that order positions here when they do not
    (a fast clock put right must not look like a jump back in time)."""
    ta, tb = (a.ts, b.ts) if b.ts > a.ts else (a_at, b_at)
    return too_fast((a.lat, a.lon, a.acc, ta), (b.lat, b.lon, b.acc, tb))


def _apply_reading(s: VehicleState, r: contract.Reading, at: datetime) -> None:
    for quantity in {*r.values, *r.flags}:
        key = (r.sensor, quantity)
        if key not in s.readings or at >= s.readings[key][0]:
            s.readings[key] = (at, r.values.get(quantity), r.flags.get(quantity))
    if r.codes is not None and (r.sensor not in s.codes or at >= s.codes[r.sensor][0]):
        s.codes[r.sensor] = (at, list(r.codes))


def _prune(s: VehicleState, now: datetime) -> list[contract.QueueState]:
    """Forget visits and quantities nothing has said anything of for a while, and keep the
    newest within the caps; the queues forgotten."""
    for times in (s.arrivals, s.departures, s.queues_at):
        for visit in _expired(times, now - KEEP_VISITS, MAX_VISITS):
            del times[visit]
    gone = [s.queues.pop(visit) for visit in s.queues.keys() - s.queues_at.keys()]
    for key in _expired({k: sample[0] for k, sample in s.readings.items()},
                        now - KEEP_READINGS, MAX_READINGS):
        del s.readings[key]
    for sensor in _expired({k: ts for k, (ts, _) in s.codes.items()}, now - KEEP_READINGS,
                           MAX_SENSORS):
        del s.codes[sensor]
    return gone


def _expired(times: dict[K, datetime], before: datetime, cap: int) -> set[K]:
    """The keys older than `before`, and the oldest of the others beyond `cap`."""
    old = {k for k, ts in times.items() if ts < before}
    left = [k for k in times if k not in old]
    if len(left) > cap:
        old.update(sorted(left, key=times.__getitem__)[:len(left) - cap])
    return old
