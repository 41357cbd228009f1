"""The kiosk's waiting room: order, waits, staff actions, restarts, retention, and what the
ground is told (anonymous, asserted)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from medicobus import contract
from onboard.kiosk.matching import InputError
from onboard.kiosk.queue import PatientQueue, Ticket, current_visit
from onboard.outbox import Outbox
from tests.clocks import ManualClock

T0 = datetime(2025, 3, 7, 8, 0, tzinfo=UTC)  # 09:00 in Évreux
VISIT = "2025-03-07-evreux-am"
VEHICLE = "bus-1"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def booked(appointment: str, minutes: float, visit: str = VISIT) -> contract.BookedAppointment:
    return contract.BookedAppointment(appointment=appointment, visit=visit, time=at(minutes),
                                      identity="0" * 64)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db")
    yield box
    box.close()


def make_queue(tmp_path: Path, clock: ManualClock, outbox: Outbox | None = None,
               **options: Any) -> PatientQueue:
    return PatientQueue(tmp_path / "queue.db", outbox, VEHICLE, clock, **options)


@pytest.fixture
def queue(tmp_path: Path, clock: ManualClock, outbox: Outbox) -> Iterator[PatientQueue]:
    q = make_queue(tmp_path, clock, outbox)
    q.open(VISIT)
    yield q
    q.close()


def walk_in(q: PatientQueue, name: str = "A.", year: int = 1950,
            reason: str = "consultation") -> Ticket:
    return q.check_in_walk_in(name, year, reason)


def minutes(delta: timedelta) -> float:
    return delta.total_seconds() / 60


def numbers(tickets: list[Ticket]) -> list[int]:
    return [t.number for t in tickets]


# ----- check-in and order -------------------------------------------------------------------

def test_walk_ins_are_numbered_and_queued_in_arrival_order(
        queue: PatientQueue, clock: ManualClock) -> None:
    first = walk_in(queue, "A.")
    clock.advance(60)
    second = walk_in(queue, "B.")
    assert (first.number, second.number) == (1, 2)
    assert first.kind == "walk_in" and first.status == "waiting" and first.visit == VISIT
    assert first.checked_in == T0 and first.appointment is None
    assert numbers(queue.waiting()) == [1, 2]
    assert [queue.position(first), queue.position(second)] == [1, 2]


def test_booked_patients_go_first_once_their_time_has_come(
        tmp_path: Path, clock: ManualClock) -> None:
    q = make_queue(tmp_path, clock)
    appt = booked("RDV-1", 30)  # 08:30
    q.open(VISIT, [appt])
    walk_in(q, "A.")  # 1
    clock.set(at(10))
    booked_ticket = q.check_in_appointment(appt, "M. L.")  # 2, early
    assert booked_ticket.appointment_time == appt.time and booked_ticket.kind == "appointment"
    clock.set(at(12))
    walk_in(q, "B.")  # 3
    # Early: a booked patient does not pass the walk-ins already waiting.
    assert numbers(q.waiting()) == [1, 3, 2]
    clock.set(at(25))  # five minutes before the appointment: due
    assert numbers(q.waiting()) == [2, 1, 3]
    assert q.position(booked_ticket) == 1


def test_late_booked_patient_keeps_their_slot_order(tmp_path: Path, clock: ManualClock) -> None:
    q = make_queue(tmp_path, clock)
    first, second = booked("RDV-1", 0), booked("RDV-2", 15)
    q.open(VISIT, [first, second])
    clock.set(at(20))
    q.check_in_appointment(second, "B.")  # 1
    walk_in(q, "W.")  # 2
    clock.set(at(25))
    q.check_in_appointment(first, "A.")  # 3, 25 minutes late
    assert numbers(q.waiting()) == [3, 1, 2]


def test_an_appointment_checks_in_once(tmp_path: Path, clock: ManualClock) -> None:
    q = make_queue(tmp_path, clock)
    appt = booked("RDV-1", 30)
    q.open(VISIT, [appt])
    q.check_in_appointment(appt, "A.")
    with pytest.raises(InputError) as caught:
        q.check_in_appointment(appt, "A.")
    assert caught.value.code == "already"
    assert len(q.tickets()) == 1


def test_walk_in_reason_must_be_a_category(queue: PatientQueue) -> None:
    with pytest.raises(ValueError):
        queue.check_in_walk_in("A.", 1950, "headache after the party")
    ticket = queue.check_in_walk_in("A.", 1950, "renewal")
    assert (ticket.reason, ticket.birth_year, ticket.initials) == ("renewal", 1950, "A.")


def test_check_in_needs_an_open_session(tmp_path: Path, clock: ManualClock) -> None:
    q = make_queue(tmp_path, clock)
    with pytest.raises(InputError) as caught:
        walk_in(q)
    assert caught.value.code == "closed"
    assert q.tickets() == [] and q.waiting() == [] and q.call_next() is None


# ----- waits -------------------------------------------------------------------------------

def test_waits_use_the_default_until_consultations_are_observed(queue: PatientQueue) -> None:
    tickets = [walk_in(queue, f"{c}.") for c in "ABC"]
    assert queue.consult_min() == 15.0
    assert [minutes(queue.estimated_wait(t)) for t in tickets] == [0, 15, 30]
    assert queue.state().wait_min == 45


def test_the_session_end_is_forecast_from_who_waits_and_who_is_booked(
        tmp_path: Path, clock: ManualClock, outbox: Outbox) -> None:
    q = make_queue(tmp_path, clock, outbox)
    q.open(VISIT, booked=[booked("RDV-1", 20), booked("RDV-2", 120)])
    assert q.session_end() == at(120 + 15)  # nobody here: the last booking, then 15 min
    for name in "ABC":
        walk_in(q, f"{name}.")
    q.call_next()  # A with the doctor from 08:00
    # A until 08:15, RDV-1 due at 08:15 (passes the walk-ins), B, C: 09:00; RDV-2 at 10:00.
    assert q.session_end() == at(135)
    q.check_in_walk_in("D.", 1950, "consultation")
    q.check_in_walk_in("E.", 1950, "consultation")
    q.check_in_walk_in("F.", 1950, "consultation")
    q.check_in_walk_in("G.", 1950, "consultation")
    # 7 consultations of 15 min after A (RDV-1, B-G) end at 10:00, then RDV-2 at 10:00.
    assert q.session_end() == at(135)
    q.check_in_walk_in("H.", 1950, "consultation")
    assert q.session_end() == at(150)  # the room now runs past the last booking
    # The ground is told, with what it is based on.
    state = q.state()
    assert state.ends_at == at(150) and state.waiting == 7 and state.booked_remaining == 2
    sent = [json.loads(r.payload) for r in outbox.after(0, 1000) if r.kind == "queue"]
    assert sent[-1]["ends_at"] == at(150).isoformat().replace("+00:00", "Z")
    q.close()


def test_waits_follow_observed_consultations(queue: PatientQueue, clock: ManualClock) -> None:
    a, b, c, d = (walk_in(queue, f"{x}.") for x in "ABCD")
    assert queue.call_next() == queue.tickets()[0]
    clock.advance(10 * 60)
    seen = queue.mark_seen(a.number)
    assert seen.status == "seen" and seen.called_at == T0 and seen.done_at == at(10)
    assert queue.consult_min() == 10.0
    assert queue.call_next() is not None  # B, at 08:10
    clock.advance(4 * 60)
    # 6 minutes left of B's consultation, then C; D one consultation later.
    assert minutes(queue.estimated_wait(c)) == 6
    assert minutes(queue.estimated_wait(d)) == 16
    assert queue.estimated_wait(b) == timedelta(0)  # already called
    assert queue.state().wait_min == 26
    clock.advance(16 * 60)  # B's consultation ran 20 minutes
    queue.mark_seen(b.number)
    assert queue.consult_min() == 15.0  # (10 + 20) / 2


def test_overlong_and_instant_consultations_are_clamped(
        queue: PatientQueue, clock: ManualClock) -> None:
    a, b = walk_in(queue), walk_in(queue)
    queue.call_next()
    queue.mark_seen(a.number)  # a mis-tap: zero seconds
    queue.call_next()
    clock.advance(5 * 3600)  # staff forgot to mark B for five hours
    queue.mark_seen(b.number)
    assert queue.consult_min() == (1 + 90) / 2


def test_walk_in_forecast_counts_bookings_that_will_pass_them(
        tmp_path: Path, clock: ManualClock) -> None:
    q = make_queue(tmp_path, clock)
    q.open(VISIT, [booked("RDV-1", 10), booked("RDV-2", 120)])
    w = walk_in(q)
    assert minutes(q.estimated_wait(w)) == 0  # the doctor is free and RDV-1 is not due
    # A newcomer: W at 08:00, RDV-1 at 08:15 (due since 08:05), the newcomer at 08:30.
    assert q.state().wait_min == 30
    assert q.state().booked_remaining == 2 and q.state().last_booked == at(120)


def test_bookings_long_past_are_not_expected(tmp_path: Path, clock: ManualClock) -> None:
    q = make_queue(tmp_path, clock)
    q.open(VISIT, [booked("RDV-1", 0)])
    clock.set(at(20))  # RDV-1 is 20 minutes late: likely not coming
    assert q.state().wait_min == 0
    assert q.state().booked_remaining == 1  # still booked, for the ground to judge


def test_early_booked_patient_is_forecast_at_their_time(
        tmp_path: Path, clock: ManualClock) -> None:
    q = make_queue(tmp_path, clock)
    appt = booked("RDV-1", 60)
    q.open(VISIT, [appt])
    ticket = q.check_in_appointment(appt, "A.")
    assert minutes(q.estimated_wait(ticket)) == 0  # nobody else: the doctor takes them now
    w1, w2 = walk_in(q), walk_in(q)
    # Behind the walk-ins now, ahead of any walk-in still waiting at 08:55.
    assert q.position(ticket) == 3
    assert minutes(q.estimated_wait(ticket)) == 30
    assert [minutes(q.estimated_wait(w)) for w in (w1, w2)] == [0, 15]


# ----- staff actions -----------------------------------------------------------------------

def test_call_seen_absent(queue: PatientQueue, clock: ManualClock) -> None:
    a, b, c = walk_in(queue), walk_in(queue), walk_in(queue)
    called = queue.call_next()
    assert called is not None and called.number == a.number
    assert called.status == "called" and called.called_at == T0
    assert queue.position(called) == 0
    assert queue.state().in_consultation == 1 and queue.state().waiting == 2
    clock.advance(600)
    assert queue.mark_seen(a.number).status == "seen"
    assert queue.mark_seen(a.number).done_at == at(10)  # idempotent
    queue.call_next()
    absent = queue.mark_absent(b.number)
    assert absent.status == "absent" and absent.done_at == at(10)
    with pytest.raises(InputError) as caught:
        queue.mark_absent(a.number)
    assert caught.value.code == "already"
    # A waiting patient who left is marked absent; one who comes back can still be seen,
    # without counting the time away as a consultation.
    queue.mark_absent(c.number)
    clock.advance(3600)
    back = queue.mark_seen(c.number)
    assert back.status == "seen" and back.called_at is None
    assert queue.consult_min() == 10.0
    assert queue.call_next() is None  # nobody waits
    with pytest.raises(InputError) as unknown:
        queue.mark_seen(99)
    assert unknown.value.code == "unknown"


def test_pause(queue: PatientQueue) -> None:
    walk_in(queue)
    queue.pause(True)
    assert queue.paused and queue.state().paused
    assert queue.call_next() is None
    walk_in(queue)  # patients may still check in during a break
    queue.pause(False)
    assert not queue.paused
    called = queue.call_next()
    assert called is not None and called.number == 1


def test_end_session(queue: PatientQueue) -> None:
    walk_in(queue)
    queue.end_session()
    assert not queue.is_open and queue.state().open is False
    assert queue.call_next() is None
    with pytest.raises(InputError) as caught:
        walk_in(queue)
    assert caught.value.code == "closed"


def test_opening_the_next_visit_closes_the_previous(queue: PatientQueue) -> None:
    walk_in(queue)
    queue.open("2025-03-07-conches-pm")
    assert queue.visit == "2025-03-07-conches-pm" and queue.is_open
    assert walk_in(queue).number == 1  # numbers start again at each visit
    queue.open(VISIT)
    assert not queue.is_open and len(queue.tickets()) == 1


def summaries(outbox: Outbox) -> list[contract.VisitSummary]:
    return [contract.VisitSummary.model_validate_json(r.payload)
            for r in outbox.after(0, 10_000) if r.kind == "summary"]


def test_a_visit_is_summed_up_once_when_its_session_ends(
        tmp_path: Path, clock: ManualClock, outbox: Outbox) -> None:
    q = make_queue(tmp_path, clock, outbox)
    slots = [booked(f"RDV-{n}", 10 * n) for n in range(1, 5)]
    q.open(VISIT, slots)
    by_name = q.check_in_appointment(slots[0], "A.")
    clock.advance(120)
    q.check_in_appointment(slots[1], "", found_by="code")
    walk_in(q)
    clock.advance(180)
    q.call_next()  # RDV-1, after 300 s
    q.mark_seen(by_name.number)
    clock.advance(900)
    q.call_next()  # RDV-2, checked in at 120 s, called at 1200 s
    q.mark_absent(2)
    q.mark_seen(3)  # seen without being called: no wait measured
    assert summaries(outbox) == []  # nothing until the session ends
    q.open("2025-03-07-conches-pm")  # the next visit closes this one
    q.end_session()
    q.end_session()  # ended already: no second summary of it
    first, second = summaries(outbox)
    assert (first.visit, first.opened, first.closed) == (VISIT, T0, at(20))
    assert (first.booked, first.checked_in_name, first.checked_in_code, first.walk_in,
            first.seen, first.absent, first.no_show) == (4, 1, 1, 1, 2, 1, 2)
    assert first.waits_s == [300, 1080]
    assert (second.visit, second.booked, second.walk_in, second.waits_s) == (
        "2025-03-07-conches-pm", 0, 0, [])


# ----- persistence and retention -----------------------------------------------------------

def test_a_restart_resumes_from_the_same_file(tmp_path: Path, clock: ManualClock) -> None:
    appt = booked("RDV-1", 30)
    q = make_queue(tmp_path, clock)
    q.open(VISIT, [appt])
    walk_in(q, "A.")
    q.check_in_appointment(appt, "M. L.")
    q.call_next()
    q.pause(True)
    before = q.tickets()
    q.close()

    again = make_queue(tmp_path, clock)
    assert again.visit is None
    again.open(VISIT, [appt])
    assert again.tickets() == before
    assert again.paused
    assert walk_in(again, "C.").number == 3
    with pytest.raises(InputError):
        again.check_in_appointment(appt, "M. L.")
    again.end_session()
    again.close()

    third = make_queue(tmp_path, clock)
    third.open(VISIT, [appt])
    assert not third.is_open  # an ended session stays ended across restarts
    third.close()


def _raw_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("queue.db*"))


def test_purge_after_retention_removes_personal_fields(
        tmp_path: Path, clock: ManualClock) -> None:
    q = make_queue(tmp_path, clock, retention=timedelta(hours=24))
    q.open(VISIT)
    q.check_in_walk_in("Zoé Q.", 1937, "vaccination")
    clock.advance(3600)
    q.check_in_walk_in("Yann K.", 1990, "renewal")
    assert b"vaccination" in _raw_bytes(tmp_path)
    clock.set(T0 + timedelta(hours=24, minutes=30))
    assert q.purge() == 1
    assert [t.initials for t in q.tickets()] == ["Yann K."]
    clock.advance(3600)
    q.open(VISIT)  # open() purges too
    assert q.tickets() == []
    q.close()
    with sqlite3.connect(tmp_path / "queue.db") as db:
        assert db.execute("SELECT COUNT(*) FROM tickets").fetchone() == (0,)
    # Overwritten, not merely unlinked: nothing left in the file or its log.
    raw = _raw_bytes(tmp_path)
    for personal in ["Zoé Q.", "Yann K.", "vaccination", "renewal"]:
        assert personal.encode() not in raw


# ----- what the ground is told ---------------------------------------------------------------

# What patients typed; none of it may leave the bus.
WALK_IN_INITIALS, BOOKED_INITIALS, BIRTH_YEAR, REASON = "Q. X.", "É. Ø.", 1937, "vaccination"
ALLOWED_FIELDS = {
    "ticket": {"v", "id", "kind", "vehicle", "ts", "visit", "ticket", "appointment", "event"},
    "queue": {"v", "id", "kind", "vehicle", "ts", "visit", "open", "paused", "waiting",
              "in_consultation", "booked_remaining", "last_booked", "consult_min", "wait_min",
              "ends_at", "tickets"},
    "summary": {"v", "id", "kind", "vehicle", "ts", "visit", "opened", "closed", "booked",
                "checked_in_name", "checked_in_code", "walk_in", "seen", "absent", "no_show",
                "waits_s"},
}
FOLLOWED_FIELDS = {"ticket", "ref", "ahead", "wait_min", "called"}  # each of `tickets`


def _values(payload: dict[str, Any]) -> list[Any]:
    return [v for k, v in payload.items() if k != "id"]  # a random id may hold any digits


def test_the_outbox_gets_anonymous_events_and_queue_states(
        tmp_path: Path, clock: ManualClock, outbox: Outbox) -> None:
    appt = booked("RDV-42", 20)
    q = make_queue(tmp_path, clock, outbox)
    q.open(VISIT, [appt])
    w = q.check_in_walk_in(WALK_IN_INITIALS, BIRTH_YEAR, REASON)
    clock.advance(60)
    b = q.check_in_appointment(appt, BOOKED_INITIALS)
    q.call_next()
    clock.advance(600)
    q.mark_seen(w.number)
    q.call_next()
    q.mark_absent(b.number)
    q.pause(True)
    q.end_session()
    q.close()

    rows = outbox.after(0, 10_000)
    messages = [contract.parse_uplink(r.payload) for r in rows]
    events = [(m.ticket, m.appointment, m.event) for m in messages
              if isinstance(m, contract.TicketEvent)]
    assert events == [(1, None, "checked_in"), (2, "RDV-42", "checked_in"),
                      (1, None, "called"), (1, None, "seen"),
                      (2, "RDV-42", "called"), (2, "RDV-42", "absent")]
    # Every ticket event is followed by a fresh queue state; so are open, pause and end.
    kinds = [r.kind for r in rows]
    assert kinds == ["queue"] + ["ticket", "queue"] * 6 + ["queue", "queue", "summary"]
    states = [m for m in messages if isinstance(m, contract.QueueState)]
    assert all(s.visit == VISIT and s.vehicle == VEHICLE for s in states)
    assert (states[0].open, states[0].waiting, states[0].booked_remaining) == (True, 0, 1)
    assert (states[2].waiting, states[2].booked_remaining) == (2, 0)
    assert states[-2].paused and states[-2].open
    assert states[-1].open is False and states[-1].tickets == []  # closed: nothing to follow
    assert [(t.ticket, t.ahead, t.called) for t in states[2].tickets or ()] == [
        (1, 0, False), (2, 1, False)]  # the walk-in first: the booking is not due yet
    summary = messages[-1]
    assert isinstance(summary, contract.VisitSummary)
    assert (summary.walk_in, summary.checked_in_name, summary.seen, summary.absent,
            summary.waits_s) == (1, 1, 1, 1, [60, 600])

    for row in rows:
        payload = json.loads(row.payload)
        assert set(payload) <= ALLOWED_FIELDS[row.kind]
        for followed in payload.get("tickets", []):
            assert set(followed) <= FOLLOWED_FIELDS
        text = json.dumps(_values(payload), ensure_ascii=False)
        bare = row.payload.replace(payload["id"], "")  # as sent, raw escapes included
        for value in [WALK_IN_INITIALS, BOOKED_INITIALS, REASON, str(BIRTH_YEAR), "Q.", "É",
                      "Ø", "\\u00c9", "\\u00d8", w.token, b.token]:  # the tokens: refs only
            assert value not in text and value not in bare
        assert BIRTH_YEAR not in _values(payload)


def test_publish_state_and_no_outbox(tmp_path: Path, clock: ManualClock, outbox: Outbox) -> None:
    quiet = make_queue(tmp_path, clock, None)
    quiet.open(VISIT)
    walk_in(quiet)  # no outbox: nothing to tell, no error
    quiet.close()
    q = PatientQueue(tmp_path / "other.db", outbox, VEHICLE, clock)
    q.open(VISIT)
    before = outbox.count()
    q.publish_state()
    assert outbox.count() == before + 1
    q.close()


# ----- which visit the kiosk is at -----------------------------------------------------------

def _visit(name: str, arrive: float, depart: float) -> contract.PlannedVisit:
    return contract.PlannedVisit(visit=name, stop=name, commune=name, insee="27229",
                                 lat=49.0, lon=1.1, radius_m=100, arrive=at(arrive),
                                 depart=at(depart))


PLAN = contract.Plan(vehicle=VEHICLE, ts=T0, day=date(2025, 3, 7), visits=[
    _visit("am", 0, 180), _visit("pm", 210, 420)])


def current_name(progress: dict[tuple[str, str], datetime], now: datetime) -> str | None:
    found = current_visit(PLAN, progress, now)
    return found.visit if found is not None else None


def test_current_visit_without_a_plan() -> None:
    assert current_visit(None, {}, T0) is None


def test_current_visit_is_where_the_bus_arrived() -> None:
    progress = {("am", "arrival"): at(-10), ("am", "departure"): at(200),
                ("pm", "arrival"): at(205)}
    assert current_name(progress, at(100)) == "pm"  # the clock does not matter here
    late = {("am", "arrival"): at(20)}
    assert current_name(late, at(300)) == "am"  # still there, whatever the timetable says


def test_current_visit_by_planned_window() -> None:
    assert current_name({}, at(-29)) == "am"
    assert current_name({}, at(-31)) is None
    assert current_name({}, at(100)) == "am"
    # Between the two the slack windows overlap: the nearer visit wins.
    assert current_name({}, at(185)) == "am"
    assert current_name({}, at(200)) == "pm"
    assert current_name({}, at(449)) == "pm"
    assert current_name({}, at(451)) is None


def test_a_visit_left_is_not_current() -> None:
    progress = {("am", "arrival"): at(0), ("am", "departure"): at(150)}
    assert current_name(progress, at(160)) is None
    assert current_name(progress, at(185)) == "pm"
