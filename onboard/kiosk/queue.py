"""The waiting room at the current stop: tickets, call order, wait estimates.

Persisted on the bus in one SQLite file (WAL, synchronous=FULL) so a kiosk restart or a
power cut loses no ticket. The personal bits a patient typed (initials, a walk-in's birth
year and reason category) live only in this file and are purged after the retention
period; what leaves the bus through the outbox is anonymous: a `contract.TicketEvent` per
ticket change and a fresh `contract.QueueState` after every change.

Call order (see `call_order`): the booking is honoured, walk-ins fill the gaps.
  1. Booked patients who are present and whose time has come (from `DUE_LEAD` before their
     appointment), by appointment time; a late patient keeps the place of their slot.
  2. Then walk-ins, first come first served.
  3. Then booked patients who came early, by appointment time: nobody waits while the
     doctor is free, but an early arrival does not pass a walk-in who is already waiting.
The position shown to a patient is their place in this order now. The wait estimate is a
forecast (see `PatientQueue.estimated_wait`): it also counts the booked patients, present or
expected, whose time will come before the ticket is reached.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from medicobus import contract
from medicobus.clock import DEFAULT_ZONE, Clock
from medicobus.storage import (
    SET_ASIDE,
    Database,
    Migrations,
    delete_set_aside,
    open_database,
    run_script,
    set_aside,
    set_aside_at,
)
from onboard.config import OnboardSettings
from onboard.kiosk.matching import InputError
from onboard.outbox import Outbox, OutboxFull

log = logging.getLogger(__name__)

Kind = Literal["appointment", "walk_in"]
Status = Literal["waiting", "called", "seen", "absent"]
Outcome = Literal["called", "seen", "absent"]  # the changes staff make to a ticket
REASONS = ("consultation", "renewal", "vaccination", "other")

DUE_LEAD = timedelta(minutes=5)  # a booked patient is due this long before their time
LATE_GRACE = timedelta(minutes=15)  # a booking not checked in this late is not expected
WINDOW_SLACK = timedelta(minutes=30)  # around a planned visit, the kiosk is at that visit
# Observed consultations are clamped to this range: a ticket staff forgot to mark seen for
# two hours, or marked by a mis-tap a second after calling, says nothing about the pace.
MIN_OBSERVED_MIN, MAX_OBSERVED_MIN = 1.0, 90.0

migrations = Migrations("kiosk_queue")


@migrations()
def m001_sessions_tickets(db: Database) -> None:
    run_script(db, """
CREATE TABLE IF NOT EXISTS sessions (
    visit TEXT PRIMARY KEY,
    opened TEXT NOT NULL,
    open INTEGER NOT NULL,
    paused INTEGER NOT NULL,
    booked TEXT NOT NULL  -- JSON [[appointment id, time], ...]: no digests, no identity
);
CREATE TABLE IF NOT EXISTS tickets (
    visit TEXT NOT NULL,
    number INTEGER NOT NULL,
    kind TEXT NOT NULL,
    initials TEXT NOT NULL,
    appointment TEXT,
    appointment_time TEXT,
    reason TEXT,
    birth_year INTEGER,
    checked_in TEXT NOT NULL,
    status TEXT NOT NULL,
    called_at TEXT,
    done_at TEXT,
    PRIMARY KEY (visit, number)
);
CREATE UNIQUE INDEX IF NOT EXISTS tickets_appointment ON tickets(appointment)
    WHERE appointment IS NOT NULL;
CREATE INDEX IF NOT EXISTS tickets_checked_in ON tickets(checked_in);
""")


@migrations()
def m002_how_bookings_were_found(db: Database) -> None:
    """How a booked patient was found ("name": last name and birth date, "code": the
    booking's code), counted in the visit's summary; NULL for a walk-in (and for the
    bookings of before, which were all found by name or code: counted as by name)."""
    db.execute("ALTER TABLE tickets ADD COLUMN found_by TEXT")


@migrations()
def m003_ticket_token(db: Database) -> None:
    # The unguessable token of the ticket's QR code: what the patient's phone shows the
    # queue by (nothing else identifies the ticket outside the bus). Purged with it.
    db.execute("ALTER TABLE tickets ADD COLUMN token TEXT")


TOKEN_BYTES = 16  # 128 random bits: 22 characters in a URL


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True)
class Ticket:
    number: int  # short, 1.. per visit: what the patient hears called
    visit: str
    kind: Kind
    initials: str
    appointment: str | None
    appointment_time: datetime | None
    reason: str | None  # walk-ins only: one of REASONS
    birth_year: int | None  # walk-ins only
    checked_in: datetime
    status: Status
    called_at: datetime | None
    done_at: datetime | None
    token: str | None = None  # None: a ticket of a kiosk from before tokens


def _ts(moment: datetime) -> str:
    """Fixed-width UTC text, so SQL compares timestamps as strings correctly."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def _ticket(row: dict[str, Any]) -> Ticket:
    checked_in = _dt(row["checked_in"])
    assert checked_in is not None
    return Ticket(
        number=row["number"], visit=row["visit"], kind=row["kind"], initials=row["initials"],
        appointment=row["appointment"], appointment_time=_dt(row["appointment_time"]),
        reason=row["reason"], birth_year=row["birth_year"], checked_in=checked_in,
        status=row["status"], called_at=_dt(row["called_at"]), done_at=_dt(row["done_at"]),
        token=row.get("token"),
    )  # fmt: skip


# ----- call order and forecast: pure functions of the tickets and the time ---------------


@dataclass(frozen=True)
class _Candidate:
    """Someone the doctor may see next: a ticket, or a booking expected to turn up."""

    number: int  # ticket number; 0 for an expected booking
    booked_at: datetime | None  # appointment time; None for a walk-in
    arrived: datetime | None  # check-in time; None for a booking not checked in yet


def _rank(c: _Candidate, now: datetime) -> tuple[int, datetime, int]:
    if c.booked_at is not None and c.booked_at - DUE_LEAD <= now:
        return (0, c.booked_at, c.number)  # booked and due: by appointment time
    if c.booked_at is None:
        assert c.arrived is not None
        return (1, c.arrived, c.number)  # walk-in: by arrival
    return (2, c.booked_at, c.number)  # booked, early: after the walk-ins


def _candidate(ticket: Ticket) -> _Candidate:
    return _Candidate(ticket.number, ticket.appointment_time, ticket.checked_in)


def call_order(waiting: Iterable[Ticket], now: datetime) -> list[Ticket]:
    """Waiting tickets in the order they are called at `now` (rule in the module docstring)."""
    return sorted(waiting, key=lambda t: _rank(_candidate(t), now))


def _calls(pool: list[_Candidate], now: datetime, doctor_free_in: timedelta,
           consult: timedelta) -> Iterator[tuple[_Candidate, datetime]]:
    """Replay the call order forward, one consultation at a time, from when the doctor is
    free: each candidate with the time it is called. Expected bookings join at their time
    (less DUE_LEAD), so a walk-in is passed by the booked patients who come before it."""
    pool = list(pool)
    t = now + doctor_free_in
    while pool:
        present = [c for c in pool
                   if c.arrived is not None or (c.booked_at and c.booked_at - DUE_LEAD <= t)]
        if not present:  # nobody here: the doctor waits for the next booked patient's time
            t = min(c.booked_at for c in pool if c.booked_at)
            continue
        nxt = min(present, key=lambda c: _rank(c, t))
        yield nxt, t
        pool.remove(nxt)
        t += consult


def forecast_wait(target: _Candidate, others: Sequence[_Candidate], now: datetime,
                  doctor_free_in: timedelta, consult: timedelta) -> timedelta:
    """When `target` will be called, counted from `now`."""
    return next(t for c, t in _calls([target, *others], now, doctor_free_in, consult)
                if c is target) - now


def forecast_end(candidates: Sequence[_Candidate], now: datetime, doctor_free_in: timedelta,
                 consult: timedelta) -> datetime:
    """When the last of `candidates` will have been seen (the session's end)."""
    called = [t for _, t in _calls(list(candidates), now, doctor_free_in, consult)]
    return called[-1] + consult if called else now + doctor_free_in


def current_visit(plan: contract.Plan | None, progress: dict[tuple[str, str], datetime],
                  now: datetime) -> contract.PlannedVisit | None:
    """The visit the bus is at: arrived and not departed (the latest arrival if the record
    is odd); failing that, a visit not yet left whose planned window, widened by
    WINDOW_SLACK, contains `now` (the nearest if windows overlap); else None."""
    if plan is None:
        return None
    there = [v for v in plan.visits
             if (v.visit, "arrival") in progress and (v.visit, "departure") not in progress]
    if there:
        return max(there, key=lambda v: progress[(v.visit, "arrival")])
    planned = [v for v in plan.visits
               if (v.visit, "departure") not in progress
               and v.arrive - WINDOW_SLACK <= now <= v.depart + WINDOW_SLACK]
    return min(planned, key=lambda v: _distance(v, now), default=None)


def _distance(visit: contract.PlannedVisit, now: datetime) -> timedelta:
    if visit.arrive <= now <= visit.depart:
        return timedelta(0)
    return min(abs(visit.arrive - now), abs(now - visit.depart))


# ----- the persisted queue ----------------------------------------------------------------


class PatientQueue:
    """The kiosk's waiting room. One session per visit; `open` starts or resumes one."""

    def __init__(self, path: Path, outbox: Outbox | None, vehicle: str, clock: Clock, *,
                 default_consult_min: float = 15.0,
                 retention: timedelta = timedelta(hours=24),
                 zone: str = DEFAULT_ZONE) -> None:
        # synchronous=FULL: a check-in the patient saw is on disk.
        self.path = Path(path)
        self.db = open_database(path, migrations, synchronous="FULL", clock=clock)
        # Deleted rows are overwritten, not just unlinked: purged data must not linger in
        # free pages of the file.
        self.db.execute("PRAGMA secure_delete=ON")
        self._outbox = outbox
        self.unsent = 0  # changes the ground could not be told of: the outbox was full
        self.vehicle = vehicle
        self.clock = clock
        self.default_consult_min = default_consult_min
        self.retention = retention
        self.zone = ZoneInfo(zone)  # "the day's consultations" are the local day's
        self.visit: str | None = None
        self._lock = threading.RLock()  # the UI may call from workers and timers

    # --- session ---

    def open(self, visit: str, booked: Sequence[contract.BookedAppointment] = ()) -> None:
        """Start, or resume after a restart, the session at `visit`. `booked` is the visit's
        bookings as now known (it replaces what was stored). A session staff ended stays
        ended. Opening another visit ends the previous one: the bus is at one
        stop at a time. Old check-in data is purged first."""
        with self._lock:
            self.purge()
            if self.visit is not None and self.visit != visit and self._is_open():
                self._close_session()
            slots = json.dumps([[b.appointment, _ts(b.time)] for b in booked])
            if self.db.execute("SELECT 1 FROM sessions WHERE visit = ?", [visit]).fetchone():
                self.db.execute("UPDATE sessions SET booked = ? WHERE visit = ?", [slots, visit])
            else:
                self.db.table("sessions").insert(
                    {"visit": visit, "opened": _ts(self.clock.now()), "open": 1, "paused": 0,
                     "booked": slots})  # fmt: skip
            self.visit = visit
            self._emit()

    def watch(self) -> str | None:
        """For a reader that does not run the queue (the waiting-room display, a process of
        its own): follow the session the kiosk opened last. Its visit, or None."""
        with self._lock:
            row = self.db.execute(
                "SELECT visit FROM sessions ORDER BY opened DESC, rowid DESC LIMIT 1").fetchone()
            self.visit = row[0] if row else None
            return self.visit

    def end_session(self) -> None:
        """Staff ended the session at this stop: no more check-ins, the ground learns the
        queue is closed and gets the visit's summary. Tickets stay until purged."""
        with self._lock:
            self._require_visit()
            if self._is_open():  # summed up once
                self._close_session()

    def _close_session(self) -> None:
        self._set_session(open=False)
        self._put(self.summary())

    def summary(self) -> contract.VisitSummary:
        """The visit's activity as counts and durations (the funders' figures): nothing
        that tells one patient from another."""
        with self._lock:
            visit = self._require_visit()
            tickets = self.tickets()
            found_by = dict(self.db.execute(
                "SELECT number, found_by FROM tickets WHERE visit = ?", [visit]
            ).fetchall())  # fmt: skip
            booked = [a for a, _ in self._booked_slots()]
            ticketed = {t.appointment for t in tickets}
            by = [found_by[t.number] or "name" for t in tickets if t.kind == "appointment"]
            waits = sorted(round((t.called_at - t.checked_in).total_seconds())
                           for t in tickets if t.called_at is not None)
            return contract.VisitSummary(
                vehicle=self.vehicle, ts=self.clock.now(), visit=visit,
                opened=datetime.fromisoformat(self._session_value("opened")),
                closed=self.clock.now(), booked=len(booked),
                checked_in_name=by.count("name"), checked_in_code=by.count("code"),
                walk_in=sum(t.kind == "walk_in" for t in tickets),
                seen=sum(t.status == "seen" for t in tickets),
                absent=sum(t.status == "absent" for t in tickets),
                no_show=sum(a not in ticketed for a in booked),
                waits_s=[min(max(w, 0), 86_400) for w in waits][:1000])  # fmt: skip

    def pause(self, paused: bool) -> None:
        """A break: patients may still check in, nobody is called."""
        with self._lock:
            self._require_visit()
            if paused != self.paused:
                self._set_session(paused=paused)

    @property
    def paused(self) -> bool:
        with self._lock:
            return bool(self._session_value("paused"))

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._is_open()

    # --- check-in ---

    def check_in_appointment(self, appt: contract.BookedAppointment, initials: str,
                             found_by: Literal["name", "code"] = "name") -> Ticket:
        """A ticket for a booked patient, found by name and birth date or by the booking's
        code; InputError("already") if the booking has one."""
        with self._lock:
            self._require_open()
            if self.db.execute("SELECT 1 FROM tickets WHERE appointment = ?",
                               [appt.appointment]).fetchone():
                raise InputError("already", "this appointment already has a ticket")
            return self._new_ticket("appointment", initials, appointment=appt.appointment,
                                    appointment_time=_ts(appt.time), found_by=found_by)

    def check_in_walk_in(self, initials: str, birth_year: int, reason: str) -> Ticket:
        """A ticket for a patient without an appointment: initials, birth year and a reason
        category only (the doctor's triage aid); `reason` is one of REASONS."""
        if reason not in REASONS:
            raise ValueError(f"unknown reason category {reason!r}")
        with self._lock:
            self._require_open()
            return self._new_ticket("walk_in", initials, reason=reason, birth_year=birth_year)

    def _new_ticket(self, kind: Kind, initials: str, **fields: Any) -> Ticket:
        visit = self._require_visit()
        number = int(self.db.execute(
            "SELECT COALESCE(MAX(number), 0) + 1 FROM tickets WHERE visit = ?", [visit]
        ).fetchone()[0])  # fmt: skip
        self.db.table("tickets").insert(
            {"visit": visit, "number": number, "kind": kind, "initials": initials,
             "checked_in": _ts(self.clock.now()), "status": "waiting", "token": new_token(),
             **fields})  # fmt: skip
        ticket = self._get(number)
        self._emit(ticket, "checked_in")
        return ticket

    # --- reading the queue ---

    def tickets(self) -> list[Ticket]:
        """Every ticket of the current visit, by number."""
        with self._lock:
            if self.visit is None:
                return []
            rows = self.db.query("SELECT * FROM tickets WHERE visit = ? ORDER BY number",
                                 [self.visit])
            return [_ticket(r) for r in rows]

    def waiting(self) -> list[Ticket]:
        """The waiting tickets in call order (module docstring); the first is called next."""
        with self._lock:
            return call_order([t for t in self.tickets() if t.status == "waiting"],
                              self.clock.now())

    def position(self, ticket: Ticket) -> int:
        """1 = next; 0 once the ticket is no longer waiting."""
        numbers = [t.number for t in self.waiting()]
        return numbers.index(ticket.number) + 1 if ticket.number in numbers else 0

    def estimated_wait(self, ticket: Ticket) -> timedelta:
        """Until the ticket is called: the consultations forecast before it (the people
        ahead, and the booked patients whose time will come first) times the observed
        mean, after the time left of the consultation in progress. Zero once called. A
        pause is not counted: nobody knows how long it will last."""
        with self._lock:
            current = next((t for t in self.tickets() if t.number == ticket.number), None)
            if current is None or current.status != "waiting":
                return timedelta(0)
            others = [c for c in self._candidates() if c.number != ticket.number]
            return self._forecast(_candidate(current), others)

    def consult_min(self) -> float:
        """The mean of today's observed consultations (called → seen), in minutes, at any
        stop of the day; the configured default until one is observed."""
        with self._lock:
            now = self.clock.now().astimezone(self.zone)
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            rows = self.db.execute(
                """SELECT called_at, done_at FROM tickets WHERE status = 'seen'
                   AND called_at IS NOT NULL AND done_at >= ?""", [_ts(midnight)]
            ).fetchall()  # fmt: skip
        durations = [(datetime.fromisoformat(d) - datetime.fromisoformat(c)).total_seconds() / 60
                     for c, d in rows]
        if not durations:
            return self.default_consult_min
        clamped = [min(max(m, MIN_OBSERVED_MIN), MAX_OBSERVED_MIN) for m in durations]
        return sum(clamped) / len(clamped)

    def newcomer_wait(self) -> timedelta:
        """The forecast wait of a walk-in checking in now."""
        with self._lock:
            newcomer = _Candidate(number=10_000, booked_at=None, arrived=self.clock.now())
            return self._forecast(newcomer, self._candidates())

    def session_end(self) -> datetime:
        """When the last patient waiting or still expected will have been seen."""
        with self._lock:
            consult = timedelta(minutes=self.consult_min())
            return forecast_end(self._candidates(), self.clock.now(),
                                self._doctor_free_in(consult), consult)

    def state(self) -> contract.QueueState:
        """The anonymous summary the ground gets: counts and minutes, nothing personal."""
        with self._lock:
            visit = self._require_visit()
            tickets = self.tickets()
            ticketed = {t.appointment for t in tickets}
            slots = self._booked_slots()
            return contract.QueueState(
                vehicle=self.vehicle, ts=self.clock.now(), visit=visit, open=self._is_open(),
                paused=self.paused,
                waiting=min(sum(t.status == "waiting" for t in tickets), 1000),
                in_consultation=min(sum(t.status == "called" for t in tickets), 20),
                booked_remaining=min(sum(a not in ticketed for a, _ in slots), 1000),
                last_booked=max((t for _, t in slots), default=None),
                consult_min=min(self.consult_min(), 240.0),
                wait_min=min(round(self.newcomer_wait().total_seconds() / 60), 10_000),
                ends_at=self.session_end(),
                tickets=self.followed() if self._is_open() else [],
            )  # fmt: skip

    def followed(self) -> list[contract.FollowedTicket]:
        """What the patients' phones show: each ticket called or waiting, in call order,
        under its token's reference (never the token, never who)."""
        with self._lock:
            called = [t for t in self.tickets() if t.status == "called"]
            shown = [contract.FollowedTicket(ticket=t.number, ref=contract.ticket_ref(t.token),
                                             ahead=0, wait_min=0, called=True)
                     for t in called if t.token]
            for ahead, ticket in enumerate(self.waiting()):
                if ticket.token:
                    wait = math.ceil(self.estimated_wait(ticket).total_seconds() / 60)
                    shown.append(contract.FollowedTicket(
                        ticket=ticket.number, ref=contract.ticket_ref(ticket.token),
                        ahead=min(ahead, 1000), wait_min=min(max(0, wait), 10_000)))
            return shown[:contract.MAX_FOLLOWED]

    def publish_state(self) -> None:
        """Put a fresh QueueState in the outbox, e.g. every few minutes as waits tick down."""
        with self._lock:
            self._emit()

    # --- staff actions ---

    def call_next(self) -> Ticket | None:
        """The first waiting ticket becomes "called" (staff then marks it seen or absent);
        None while paused, closed, or when nobody waits."""
        with self._lock:
            if self.visit is None or not self._is_open() or self.paused:
                return None
            waiting = self.waiting()
            if not waiting:
                return None
            return self._update(waiting[0], "called", called_at=_ts(self.clock.now()))

    def mark_seen(self, number: int) -> Ticket:
        """The doctor saw the patient. From "called" this is an observed consultation; a
        waiting or absent patient seen directly has no call time, so no duration."""
        with self._lock:
            ticket = self._get(number)
            if ticket.status == "seen":
                return ticket
            called = ticket.called_at if ticket.status == "called" else None
            called_at = _ts(called) if called is not None else None
            return self._update(ticket, "seen", called_at=called_at,
                                done_at=_ts(self.clock.now()))

    def mark_absent(self, number: int) -> Ticket:
        """The patient did not answer the call, or left."""
        with self._lock:
            ticket = self._get(number)
            if ticket.status == "absent":
                return ticket
            if ticket.status == "seen":
                raise InputError("already", f"ticket {number} was already seen")
            return self._update(ticket, "absent", done_at=_ts(self.clock.now()))

    # --- retention ---

    def purge(self) -> int:
        """Delete check-ins older than the retention period (their initials, birth years
        and reasons with them) and old sessions; return how many tickets went."""
        with self._lock:
            cutoff = _ts(self.clock.now() - self.retention)
            gone = self.db.execute("DELETE FROM tickets WHERE checked_in < ?", [cutoff]).rowcount
            self.db.execute("DELETE FROM sessions WHERE opened < ? AND visit IS NOT ?",
                            [cutoff, self.visit])
            if gone:
                # Old row images also sit in the write-ahead log: fold it into the (securely
                # overwritten) file and empty it.
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._purge_set_aside()
            return int(gone)

    def _purge_set_aside(self) -> None:
        # A damaged queue file set aside holds check-ins too: it goes once all of them are
        # past their retention (they are older than the moment it was set aside).
        cutoff = self.clock.now() - self.retention
        for aside in set_aside(self.path.parent):
            if aside.name.startswith(self.path.name + SET_ASIDE) and set_aside_at(aside) < cutoff:
                delete_set_aside(aside)
                log.warning("%s deleted: the check-ins of this damaged queue file are past "
                            "their retention", aside.name)

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # --- internals ---

    def _require_visit(self) -> str:
        if self.visit is None:
            raise RuntimeError("no session: call open(visit) first")
        return self.visit

    def _require_open(self) -> None:
        if self.visit is None or not self._is_open():
            raise InputError("closed", "no session open at this stop")

    def _session_value(self, column: str) -> Any:
        row = self.db.execute(f"SELECT {column} FROM sessions WHERE visit = ?",
                              [self.visit]).fetchone()
        return row[0] if row else None

    def _is_open(self) -> bool:
        return bool(self._session_value("open"))

    def _set_session(self, **flags: bool) -> None:
        self.db.table("sessions").update(self._require_visit(),
                                         {k: int(v) for k, v in flags.items()})
        self._emit()

    def _booked_slots(self) -> list[tuple[str, datetime]]:
        stored = self._session_value("booked")
        return [(a, datetime.fromisoformat(t)) for a, t in json.loads(stored or "[]")]

    def _get(self, number: int) -> Ticket:
        rows = list(self.db.query("SELECT * FROM tickets WHERE visit = ? AND number = ?",
                                  [self.visit, number]))
        if not rows:
            raise InputError("unknown", f"no ticket {number} at this visit")
        return _ticket(rows[0])

    def _update(self, ticket: Ticket, status: Outcome, **times: str | None) -> Ticket:
        self.db.table("tickets").update((ticket.visit, ticket.number),
                                        {"status": status, **times})
        updated = self._get(ticket.number)
        self._emit(updated, status)
        return updated

    def _candidates(self) -> list[_Candidate]:
        """Who may be seen before someone new: the waiting tickets and the bookings not
        checked in whose time is not long past (those are likely not coming)."""
        now = self.clock.now()
        tickets = self.tickets()
        ticketed = {t.appointment for t in tickets}
        expected = [_Candidate(0, time, None) for a, time in self._booked_slots()
                    if a not in ticketed and time >= now - LATE_GRACE]
        return [_candidate(t) for t in tickets if t.status == "waiting"] + expected

    def _forecast(self, target: _Candidate, others: Sequence[_Candidate]) -> timedelta:
        consult = timedelta(minutes=self.consult_min())
        return forecast_wait(target, others, self.clock.now(), self._doctor_free_in(consult),
                             consult)

    def _doctor_free_in(self, consult: timedelta) -> timedelta:
        """What is left of the consultation in progress: the latest call, assumed to last
        the mean. Older calls never marked are taken as finished (staff forgot)."""
        called = [t.called_at for t in self.tickets() if t.status == "called" and t.called_at]
        if not called:
            return timedelta(0)
        return max(timedelta(0), max(called) + consult - self.clock.now())

    def _emit(self, ticket: Ticket | None = None,
              event: Literal["checked_in"] | Outcome | None = None) -> None:
        """Tell the ground, anonymously: the ticket's change if any, then the queue."""
        if self._outbox is None:
            return
        now = self.clock.now()
        if ticket is not None and event is not None and not self._put(contract.TicketEvent(
                vehicle=self.vehicle, ts=now, visit=ticket.visit, ticket=ticket.number,
                appointment=ticket.appointment, event=event)):
            return  # one change, unsent once: its queue state would not find room either
        self._put(self.state())

    def tell(self, reading: contract.Reading) -> bool:
        """Tell the ground of the kiosk's own equipment (its printer), through the outbox
        the queue's messages take; False when the outbox was full."""
        with self._lock:
            return self._put(reading)

    def _put(self, message: contract.TicketEvent | contract.QueueState
             | contract.VisitSummary | contract.Reading) -> bool:
        if self._outbox is None:
            return True
        try:
            self._outbox.put(message)
            return True
        except OutboxFull:
            # The patient's ticket is kept here and the queue goes on: only the ground's
            # view waits. The next change that finds room sends the queue as it then is.
            self.unsent += 1
            log.error("the outbox is full: the ground was not told of this change of the "
                      "queue (%d so far)", self.unsent)
            return False


def bus_queue(settings: OnboardSettings, clock: Clock, outbox: Outbox | None) -> PatientQueue:
    """The bus's queue file (`data_dir/kiosk.db`) as its configuration says: the kiosk's,
    with the outbox; the waiting-room display's, without (it only reads)."""
    kiosk = settings.kiosk
    return PatientQueue(settings.data_dir / "kiosk.db", outbox, settings.vehicle, clock,
                        default_consult_min=kiosk.default_consult_min,
                        retention=timedelta(hours=kiosk.retention_hours), zone=kiosk.timezone)

