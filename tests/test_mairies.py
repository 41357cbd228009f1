"""Telling the mairies (ground.mairies): the coordinator's changes and the day's delays reach
a real SMTP server (aiosmtpd, STARTTLS and a login) and real webhook receivers, in French,
once each, across restarts, with a mail server down then up and a receiver that refuses."""

from __future__ import annotations

import time as monotonic_time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from ground.board import Board
from ground.eta import Forecast, TravelModel
from ground.fleet import Contact, Fleet
from ground.mairies import (
    RELAY_MAX,
    DelayWatch,
    MairieNotifier,
    MairieSettings,
    Notice,
    Slot,
    day_fr,
    notices_of,
    payload,
    relay_text,
    time_fr,
)
from ground.state import LiveState
from ground.tournee import Changed, Tournee
from medicobus import contract
from medicobus.settings import parse_toml
from tests.brokers import free_port
from tests.clocks import ManualClock
from tests.receivers import Inbox, Receiver, start_smtp
from tests.test_tournee import FLEET, MONDAY, PARIS

VISIT = "2027-03-09/noce/am"
PUBLIC = "https://medicobus.example.fr"


def fleet_toml(hook_port: int) -> str:
    """test_tournee's fleet, with the contacts of Nocé's mairie: a mailbox and a webhook."""
    contacts = f"""
[[stops.contacts]]
email = "mairie@noce.test"
[[stops.contacts]]
webhook = "http://127.0.0.1:{hook_port}/hooks/medicobus"
headers = {{ Authorization = "Bearer t0ken" }}
"""
    place = "place = \"Place de l'église\"\n"
    assert place in FLEET
    return FLEET.replace(place, place + contacts)


def settings(smtp_port: int, cert: Path, **extra: Any) -> MairieSettings:
    return MairieSettings.model_validate({
        "smtp": {"host": "localhost", "port": smtp_port, "security": "starttls",
                 "ca_file": cert, "username": "medicobus", "password": "s3cret",
                 "from_addr": "coordination@medicobus.test", "backoff_s": 0.05,
                 "backoff_max_s": 0.2, "timeout_s": 5},
        "webhook": {"timeout_s": 2, "backoff_s": 0.05, "backoff_max_s": 0.2},
        "public_url": PUBLIC + "/", **extra})  # fmt: skip


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    yield r
    r.stop()


@pytest.fixture
def fleet(receiver: Receiver) -> Fleet:
    return parse_toml(fleet_toml(receiver.server.server_address[1]), Fleet, source="fleet.toml")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MONDAY)


def notice(**changes: Any) -> Notice:
    base: dict[str, Any] = dict(
        kind="moved", visit=VISIT, commune="Nocé", insee="61309",
        vehicle_name="Médicobus du Perche",
        before=Slot(datetime(2027, 3, 9, 7, 30, tzinfo=UTC), datetime(2027, 3, 9, 11, tzinfo=UTC),
                    "Place de l'église"),
        after=Slot(datetime(2027, 3, 11, 13, tzinfo=UTC), datetime(2027, 3, 11, 16, tzinfo=UTC),
                   "Salle des fêtes"),
        contacts=(Contact(email="mairie@noce.test"),), reason="jour de marché")  # fmt: skip
    return Notice(**{**base, **changes})


# -- a change of the tournée reaches the mairie ---------------------------------------------


def test_a_cancellation_reaches_the_mailbox_and_the_webhook_in_french(
        tmp_path: Path, smtp: tuple[Inbox, int], certificate: tuple[Path, Path],
        receiver: Receiver, fleet: Fleet, clock: ManualClock) -> None:
    inbox, port = smtp
    tournee = Tournee(fleet, tmp_path / "ground.db", clock)
    mairies = MairieNotifier(settings(port, certificate[0]), tmp_path / "ground.db", PARIS,
                             clock)
    tournee.subscribe(mairies.tell_changes)
    mairies.start()
    try:
        assert tournee.cancel(VISIT, "médecin malade", "marie") is not None
        assert mairies.flush(15)
    finally:
        mairies.stop()
        tournee.close()
    relay = ("Médicobus : la visite du mardi 9 mars (matin) à Nocé est annulée (médecin "
             "malade). Prochaine visite : mardi 23 mars, 8 h 30.")
    [mail] = inbox.wait(1)
    envelope = inbox.messages[0][0]
    assert envelope.rcpt_tos == ["mairie@noce.test"]
    assert mail["From"] == "coordination@medicobus.test"
    assert mail["Subject"] == "[Médicobus] Nocé : visite du mardi 9 mars (matin) annulée"
    text = mail.get_content()
    for line in ["La visite du médicobus à Nocé du mardi 9 mars 2027 (matin) est annulée.",
                 "Motif : médecin malade",
                 "Prévue : mardi 9 mars 2027, de 8 h 30 à 12 h, Place de l'église",
                 "Prochaine visite : mardi 23 mars 2027, de 8 h 30 à 12 h, Place de l'église",
                 f"Horaires en direct : {PUBLIC}/communes/61309", relay]:
        assert line in text.splitlines()
    [post] = receiver.posts
    assert receiver.headers[0]["Authorization"] == "Bearer t0ken"
    assert post == {
        "kind": "cancelled", "visit": VISIT, "insee": "61309", "commune": "Nocé",
        "vehicle": "Bus 1",
        "before": {"arrive": "2027-03-09T08:30:00+01:00", "depart": "2027-03-09T12:00:00+01:00",
                   "place": "Place de l'église"},
        "after": None, "reason": "médecin malade", "delay_min": None, "eta_told": None,
        "text": relay,
        "subject": "[Médicobus] Nocé : visite du mardi 9 mars (matin) annulée",
        "url": f"{PUBLIC}/communes/61309"}  # fmt: skip
    assert len(relay) <= RELAY_MAX


def test_the_same_change_twice_or_after_a_restart_sends_one_message_a_new_move_sends(
        tmp_path: Path, smtp: tuple[Inbox, int], certificate: tuple[Path, Path],
        receiver: Receiver, fleet: Fleet, clock: ManualClock) -> None:
    inbox, port = smtp
    db = tmp_path / "ground.db"
    tournee = Tournee(fleet, db, clock)
    mairies = MairieNotifier(settings(port, certificate[0]), db, PARIS, clock)
    mairies.start()
    try:
        first = tournee.move(VISIT, "jour de marché", "marie", day=date(2027, 3, 11),
                             place="Salle des fêtes")
        assert first is not None
        assert mairies.tell_changes(first) == 2  # the mailbox and the webhook
        assert mairies.tell_changes(first) == 0  # the same change heard twice
        assert mairies.flush(15)
    finally:
        mairies.stop()
    assert len(inbox.wait(1)) == 1 and len(receiver.posts) == 1
    mail = inbox.messages[0][1]
    assert mail["Subject"] == ("[Médicobus] Nocé : visite du mardi 9 mars (matin) déplacée "
                               "au jeudi 11 mars")
    assert ("Désormais : jeudi 11 mars 2027, de 8 h 30 à 12 h, Salle des fêtes"
            in mail.get_content())
    assert receiver.posts[0]["text"] == (
        "Médicobus : la visite du mardi 9 mars (matin) à Nocé est déplacée au jeudi 11 mars, "
        "de 8 h 30 à 12 h, Salle des fêtes (jour de marché).")

    again = MairieNotifier(settings(port, certificate[0]), db, PARIS, clock)  # a restart
    again.start()
    try:
        assert again.tell_changes(first) == 0
        second = tournee.move(VISIT, "salle prise", "marie", day=date(2027, 3, 12))
        assert second is not None
        assert again.tell_changes(second) == 2  # another move: told
        moved_to = first.differences[0].after
        assert moved_to is not None
        assert again.tell(notice(after=Slot.of(moved_to), reason="jour de marché")) == 1
        assert again.flush(15)  # back to the first move, after another: told again
        assert again.stats["notices"]["duplicates"] == 2
    finally:
        again.stop()
        tournee.close()
    # Moved from where it was last said to be: what the residents were told.
    assert [m["Subject"] for m in inbox.wait(3)][1] == (
        "[Médicobus] Nocé : visite du jeudi 11 mars (matin) déplacée au vendredi 12 mars")
    assert len(inbox.messages) == 3 and len(receiver.posts) == 2
    check = MairieNotifier(settings(port, certificate[0]), db, PARIS, clock)
    try:
        assert [(m.channel, m.status) for m in check.messages(VISIT)] == [
            ("email", "sent"), ("webhook", "sent"), ("email", "sent"), ("webhook", "sent"),
            ("email", "sent")]
    finally:
        check.stop()


def test_each_change_of_the_tournee_is_told_in_its_words(
        tmp_path: Path, fleet: Fleet, clock: ManualClock) -> None:
    tournee = Tournee(fleet, tmp_path / "ground.db", clock)
    try:
        def told(changed: Changed | None) -> list[tuple[str, str]]:
            assert changed is not None
            return [(n.kind, relay_text(n, PARIS)) for n in notices_of(changed, clock.now())]

        assert told(tournee.park("noce", date(2027, 3, 9), "Place du marché", 48.384, 0.679,
                                 "travaux", "marie")) == [
            ("moved", "Médicobus : la visite du mardi 9 mars (matin) à Nocé change de lieu : "
                      "Place du marché (travaux).")]  # fmt: skip
        assert told(tournee.add("bus-1", "noce", date(2027, 3, 11), "après-midi", time(14),
                                time(17), "rattrapage", "marie")) == [
            ("added", "Médicobus : visite supplémentaire à Nocé le jeudi 11 mars, de 14 h à "
                      "17 h, Place de l'église (rattrapage).")]  # fmt: skip
        cancelled = tournee.cancel("2027-03-23/noce/am", "neige", "marie")
        assert cancelled is not None
        assert told(tournee.undo(cancelled.change.id, "route dégagée", "marie")) == [
            ("restored", "Médicobus : la visite du mardi 23 mars (matin) à Nocé est finalement "
                         "maintenue, de 8 h 30 à 12 h, Place de l'église (route dégagée).")]
        # Bellême has no contact: its changes are nobody's mail.
        assert told(tournee.cancel("2027-03-09/belleme/pm", "panne", "marie")) == []
        clock.set(datetime(2027, 3, 9, 13, 0, tzinfo=PARIS))  # Nocé's morning is over
        assert told(tournee.park("noce", date(2027, 3, 9), "Salle des fêtes", 48.385, 0.68,
                                 "marché", "marie")) == []
    finally:
        tournee.close()


# -- delivery trouble -----------------------------------------------------------------------


def test_a_mail_server_down_then_up_gets_the_message_once(
        tmp_path: Path, certificate: tuple[Path, Path], clock: ManualClock) -> None:
    port, inbox = free_port(), Inbox()
    mairies = MairieNotifier(settings(port, certificate[0]), tmp_path / "g.db", PARIS, clock)
    mairies.start()
    server = None
    try:
        began = monotonic_time.monotonic()
        assert mairies.tell(notice()) == 1
        assert monotonic_time.monotonic() - began < 0.5  # the coordinator's request never waits
        deadline = monotonic_time.monotonic() + 10
        while mairies.stats["mairies-email"]["retries"] < 2:
            assert monotonic_time.monotonic() < deadline
            monotonic_time.sleep(0.02)
        assert mairies.messages(VISIT)[0].status == "pending"
        server = start_smtp(inbox, port, certificate)  # the server comes back
        assert mairies.flush(15)
        assert mairies.tell(notice()) == 0
        assert mairies.flush(5)
        assert [m.status for m in mairies.messages(VISIT)] == ["sent"]
    finally:
        mairies.stop()
        if server:
            server.stop()
    assert len(inbox.messages) == 1
    assert mairies.stats["mairies-email"]["sent"] == 1


def test_a_message_not_delivered_at_shutdown_stays_pending_and_goes_at_the_next_start(
        tmp_path: Path, certificate: tuple[Path, Path], clock: ManualClock) -> None:
    port, inbox, db = free_port(), Inbox(), tmp_path / "g.db"
    first = MairieNotifier(settings(port, certificate[0]), db, PARIS, clock)
    first.start()
    assert first.tell(notice()) == 1
    deadline = monotonic_time.monotonic() + 10
    while first.stats["mairies-email"]["retries"] < 1:
        assert monotonic_time.monotonic() < deadline
        monotonic_time.sleep(0.02)
    first.stop()  # the ground stops while the mail server is down
    server = start_smtp(inbox, port, certificate)
    second = MairieNotifier(settings(port, certificate[0]), db, PARIS, clock)
    try:
        assert [m.status for m in second.messages(VISIT)] == ["pending"]
        assert second.tell(notice()) == 0  # pending: already on its way
        second.start()
        assert second.flush(15)
        assert [m.status for m in second.messages(VISIT)] == ["sent"]
    finally:
        second.stop()
        server.stop()
    assert len(inbox.wait(1)) == 1
    assert inbox.messages[0][1]["Message-ID"].startswith("<mairie-notice-1-")


def test_a_webhook_answering_400_is_logged_and_counted_the_others_still_told(
        tmp_path: Path, smtp: tuple[Inbox, int], certificate: tuple[Path, Path],
        receiver: Receiver, clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    inbox, port = smtp
    refusing = Receiver(free_port(), status=400)
    bad = f"http://127.0.0.1:{refusing.server.server_address[1]}/hook?token=abc"
    good = f"http://127.0.0.1:{receiver.server.server_address[1]}/hook"
    contacts = (Contact(webhook=bad), Contact(webhook=good), Contact(email="mairie@noce.test"))
    mairies = MairieNotifier(settings(port, certificate[0]), tmp_path / "g.db", PARIS, clock)
    mairies.start()
    try:
        assert mairies.tell(notice(contacts=contacts)) == 3
        assert mairies.flush(15)
        assert mairies.tell(notice(contacts=contacts)) == 0  # refused for good: not again
        assert mairies.flush(5)
        stats = mairies.stats
    finally:
        mairies.stop()
        refusing.stop()
    assert len(refusing.posts) == 1  # a 400 is not retried
    assert len(receiver.posts) == 1 and len(inbox.wait(1)) == 1
    bad_worker = next(v for k, v in stats.items() if k.startswith("webhook") and v["failed"])
    assert bad_worker["failed"] == 1 and bad_worker["retries"] == 0
    check = MairieNotifier(settings(port, certificate[0]), tmp_path / "g.db", PARIS, clock)
    try:
        assert {m.address: m.status for m in check.messages(VISIT)} == {
            bad: "refused", good: "sent", "mairie@noce.test": "sent"}
    finally:
        check.stop()
    assert any("refused: HTTP 400" in r.getMessage() for r in caplog.records)
    assert not any("token=abc" in r.getMessage() for r in caplog.records)


# -- delays on the day ----------------------------------------------------------------------


def test_a_delay_is_told_once_past_the_threshold_and_once_past_twice_it(
        tmp_path: Path, smtp: tuple[Inbox, int], certificate: tuple[Path, Path],
        receiver: Receiver, fleet: Fleet) -> None:
    inbox, port = smtp
    clock = ManualClock(datetime(2027, 3, 9, 8, 40, tzinfo=PARIS))
    state = LiveState()
    board = Board(fleet, state, TravelModel(), clock)
    db = tmp_path / "g.db"
    mairies = MairieNotifier(settings(port, certificate[0]), db, PARIS, clock)
    watch = DelayWatch(mairies, board)
    depot = (48.40, 0.70)  # the bus waits at the depot: not yet on its way
    told_at: list[Forecast] = []

    def at(hh: int, mm: int) -> int:
        clock.set(datetime(2027, 3, 9, hh, mm, tzinfo=PARIS))
        state.apply(contract.Status(vehicle="bus-1", ts=clock.now(), state="online"),
                    clock.now())
        state.apply(contract.Position(vehicle="bus-1", ts=clock.now(), lat=depot[0],
                                      lon=depot[1], speed=0.0), clock.now())
        told = watch.check()
        assert mairies.flush(15)
        if told:  # what the board forecast when the mairie was told
            told_at.append(next(f for f in board.forecasts("bus-1") if f.visit.visit == VISIT))
        return told

    mairies.start()
    try:
        assert at(8, 40) == 0  # 13 min late: under the threshold (15)
        clock.set(datetime(2027, 3, 9, 8, 45, tzinfo=PARIS))
        state.apply(contract.Status(vehicle="bus-1", ts=clock.now(), state="offline"),
                    clock.now())
        assert watch.check() == 0  # 18 min, but the bus is silent: its forecast is a guess
        assert at(8, 50) == 2  # 23 min: the mailbox and the webhook
        assert at(8, 55) == 0  # still late, 28 min: told already
        assert at(9, 5) == 2  # 38 min: past twice the threshold, told once more
        assert at(9, 6) == 0
        # A restart: the log says what was told.
        again = DelayWatch(MairieNotifier(settings(port, certificate[0]), db, PARIS, clock),
                           board)
        assert again.check() == 0

        class MadeUpTime(Board):  # the same forecasts, but the bus is back to 20 min late
            def forecasts(self, vehicle: str) -> list[Forecast]:
                return [replace(f, delay_min=20) for f in super().forecasts(vehicle)]

        board_after = MadeUpTime(fleet, state, TravelModel(), clock)
        assert DelayWatch(again.notifier, board_after).check() == 0  # 38 min was told
        again.notifier.stop()
        state.apply(contract.VisitEvent(vehicle="bus-1", ts=clock.now(), event="arrival",
                                        visit=VISIT, stop="noce", lat=48.3838, lon=0.6783),
                    clock.now())
        assert at(9, 50) == 0  # arrived: nothing more
    finally:
        mairies.stop()
    subjects = [m["Subject"] for m in inbox.wait(2)]
    first, second = told_at
    assert 15 <= first.delay_min < 30 <= second.delay_min  # past the threshold, then twice it
    assert subjects == [f"[Médicobus] Nocé : retard d'environ {f.delay_min} min ce mardi 9 mars"
                        for f in told_at]  # fmt: skip
    # Nothing recorded yet (no precision known): the arrival is told rounded to 5 min.
    told = receiver.posts[0]["eta_told"]
    around = datetime.fromisoformat(told["from"])
    assert told["said"] == "around" and told["to"] == told["from"] and told["from"].endswith(
        "+01:00") and around.minute % 5 == 0 and around.second == 0
    assert abs(around - first.arrive) <= timedelta(minutes=2.5)
    assert receiver.posts[0]["text"] == (
        f"Médicobus : retard d'environ {first.delay_min} min à Nocé ce mardi 9 mars : arrivée "
        f"prévue vers {time_fr(around, PARIS)} au lieu de 8 h 30.")
    assert receiver.posts[0]["delay_min"] == first.delay_min
    assert receiver.posts[0]["kind"] == "delayed"
    later = datetime.fromisoformat(receiver.posts[1]["eta_told"]["from"])
    assert later.minute % 5 == 0 and abs(later - second.arrive) <= timedelta(minutes=2.5)
    assert f"Arrivée estimée : vers {time_fr(later, PARIS)}" in \
        inbox.messages[1][1].get_content()  # fmt: skip


def test_the_delay_watch_never_raises(tmp_path: Path, fleet: Fleet, clock: ManualClock,
                                      certificate: tuple[Path, Path]) -> None:
    class Broken(Board):
        def forecasts(self, vehicle: str) -> list[Any]:
            raise RuntimeError("boom")

    state = LiveState()
    state.apply(contract.Status(vehicle="bus-1", ts=clock.now(), state="online"), clock.now())
    mairies = MairieNotifier(settings(free_port(), certificate[0]), tmp_path / "g.db", PARIS,
                             clock)
    try:
        assert DelayWatch(mairies, Broken(fleet, state, TravelModel(), clock)).check() == 0
    finally:
        mairies.stop()


# -- the texts ------------------------------------------------------------------------------


def test_french_dates_and_hours_across_the_autumn_clock_change() -> None:
    # 31 October 2027 is the last Sunday of October: 08:30 that morning is 07:30 UTC (CET),
    # the day before 06:30 UTC (CEST).
    moved = notice(
        visit="2027-10-31/noce/am",
        before=Slot(datetime(2027, 10, 31, 7, 30, tzinfo=UTC),
                    datetime(2027, 10, 31, 11, tzinfo=UTC), "Place de l'église"),
        after=Slot(datetime(2027, 11, 2, 13, tzinfo=UTC), datetime(2027, 11, 2, 16, tzinfo=UTC),
                   "Salle des fêtes"))  # fmt: skip
    assert relay_text(moved, PARIS) == (
        "Médicobus : la visite du dimanche 31 octobre (matin) à Nocé est déplacée au mardi "
        "2 novembre, de 14 h à 17 h, Salle des fêtes (jour de marché).")
    data = payload(moved, PARIS)
    assert data["before"]["arrive"] == "2027-10-31T08:30:00+01:00"
    assert data["after"]["depart"] == "2027-11-02T17:00:00+01:00"
    saturday = notice(visit="2027-10-30/noce/am", kind="cancelled", after=None, reason="",
                      before=Slot(datetime(2027, 10, 30, 6, 30, tzinfo=UTC),
                                  datetime(2027, 10, 30, 10, tzinfo=UTC)))
    assert relay_text(saturday, PARIS) == (
        "Médicobus : la visite du samedi 30 octobre (matin) à Nocé est annulée.")
    assert payload(saturday, PARIS)["before"]["arrive"] == "2027-10-30T08:30:00+02:00"
    assert day_fr(datetime(2027, 10, 31, 23, 30, tzinfo=UTC), PARIS) == "lundi 1er novembre"
    # And spring: 28 March 2027, 08:30 is 06:30 UTC (CEST from 02:00).
    spring = notice(kind="added", before=None, visit="2027-03-28/noce/am", reason="",
                    after=Slot(datetime(2027, 3, 28, 6, 30, tzinfo=UTC),
                               datetime(2027, 3, 28, 10, 15, tzinfo=UTC), "Salle des fêtes"))
    assert relay_text(spring, PARIS) == (
        "Médicobus : visite supplémentaire à Nocé le dimanche 28 mars, de 8 h 30 à 12 h 15, "
        "Salle des fêtes.")


def test_the_relay_text_fits_whatever_the_reason() -> None:
    long = notice(reason="travaux de voirie sur la place " * 7,
                  after=Slot(datetime(2027, 3, 9, 7, 30, tzinfo=UTC),
                             datetime(2027, 3, 9, 11, tzinfo=UTC),
                             "parking de la salle polyvalente, derrière l'école"))
    text = relay_text(long, PARIS)
    assert len(text) <= RELAY_MAX
    assert text.startswith("Médicobus : la visite du mardi 9 mars (matin) à Nocé change de "
                           "lieu : parking de la salle polyvalente, derrière l'école (travaux")
    assert text.endswith("…).")
    restored = notice(kind="restored", before=None, reason="le médecin est rétabli")
    assert relay_text(restored, PARIS) == (
        "Médicobus : la visite du jeudi 11 mars (matin) à Nocé est finalement maintenue, "
        "de 14 h à 17 h, Salle des fêtes (le médecin est rétabli).")


def test_settings_refuse_what_they_do_not_know() -> None:
    with pytest.raises(ValueError, match="extra"):
        MairieSettings.model_validate({"delay_threshold": 10})
    with pytest.raises(ValueError, match="public_url"):
        MairieSettings.model_validate({"public_url": "medicobus.example.fr"})
    assert MairieSettings().delay_threshold_min == 15
