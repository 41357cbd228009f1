"""The check-in kiosk driven end to end with Textual's Pilot: both patient flows, bad
input, the idle warning and reset, staff mode, the language switch."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input

from medicobus import contract
from onboard.config import KioskSettings
from onboard.kiosk import i18n, msgfmt
from onboard.kiosk.app import KioskApp
from onboard.kiosk.matching import AppointmentBook
from onboard.kiosk.printer import TicketPrinter
from onboard.kiosk.queue import PatientQueue
from onboard.kiosk.session import wait_minutes
from onboard.kiosk.widgets import CallBanner, HugeNumber, Problem, Say, Title
from onboard.outbox import Outbox
from tests.clocks import ManualClock

# Async tests run on asyncio through anyio's pytest plugin (anyio comes with httpx).
pytestmark = pytest.mark.anyio

KEY = b"test-checkin-key"
VEHICLE = "medicobus-61"
# 09:00 in Paris on a Tuesday in March (UTC+1): the bus is at Longny-au-Perche.
NOW = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
DAY = date(2026, 3, 10)
VISIT = contract.PlannedVisit(
    visit="2026-03-10-longny", stop="longny-mairie", commune="Longny-les-Villages",
    insee="61230", lat=48.53, lon=0.75, radius_m=150,
    arrive=datetime(2026, 3, 10, 7, 30, tzinfo=UTC),
    depart=datetime(2026, 3, 10, 11, 30, tzinfo=UTC),
)  # fmt: skip
# (id, local time, last name, birth date): what the booking platform exported.
BOOKINGS = [
    ("RDV-1001", datetime(2026, 3, 10, 8, 15, tzinfo=UTC), "N'Diaye", date(1948, 3, 7)),
    ("RDV-1002", datetime(2026, 3, 10, 8, 30, tzinfo=UTC), "Lefèvre-Dupont", date(1952, 11, 23)),
    ("RDV-1003", datetime(2026, 3, 10, 9, 0, tzinfo=UTC), "Martin", date(1961, 1, 2)),
]
ELSEWHERE = ("RDV-2001", datetime(2026, 3, 10, 13, 0, tzinfo=UTC), "Bernard", date(1970, 5, 5))


def appointments() -> contract.Appointments:
    items = [contract.BookedAppointment(
        appointment=a, visit=VISIT.visit, time=t,
        identity=contract.identity_digest(KEY, DAY, name, birth)) for a, t, name, birth in BOOKINGS]
    a, t, name, birth = ELSEWHERE
    items.append(contract.BookedAppointment(
        appointment=a, visit="2026-03-10-moulins", time=t,
        identity=contract.identity_digest(KEY, DAY, name, birth)))
    return contract.Appointments(vehicle=VEHICLE, ts=NOW, day=DAY, items=items)


@dataclass
class Kiosk:
    app: KioskApp
    queue: PatientQueue
    outbox: Outbox
    clock: ManualClock


def make_kiosk(tmp: Path, *, visit: contract.PlannedVisit | None = VISIT,
               warning_s: float = 600.0, reset_s: float = 900.0,
               language: str = "fr", printer: TicketPrinter | None = None,
               follow_url: str | None = None) -> Kiosk:
    clock = ManualClock(NOW)
    outbox = Outbox(tmp / "outbox.db")
    queue = PatientQueue(tmp / "kiosk.db", outbox, VEHICLE, clock, default_consult_min=15.0)
    settings = KioskSettings(language=language, key_file=tmp / "checkin.key", staff_pin="2468",
                             idle_warning_s=warning_s, idle_reset_s=reset_s,
                             follow_url=follow_url)
    book = appointments()
    app = KioskApp(queue, lambda: AppointmentBook(book, KEY), lambda: visit, settings, clock,
                   printer=printer)
    return Kiosk(app, queue, outbox, clock)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def kiosk(tmp_path: Path) -> Iterator[Kiosk]:
    k = make_kiosk(tmp_path)
    yield k
    k.queue.close()
    i18n.set_language(i18n.DEFAULT_LANGUAGE)


SIZE = (80, 30)


# ----- helpers ------------------------------------------------------------------------------


def screen_name(app: KioskApp) -> str:
    return type(app.screen).__name__


def problem(app: KioskApp) -> str:
    return app.screen.query_one("#problem", Problem).text


async def type_answer(pilot: Pilot[None], text: str, submit: str = "enter") -> None:
    """Type into the screen's field as a keyboard would (character by character), then
    submit with Enter (keyboard) or by clicking Continue (touch)."""
    field = pilot.app.screen.query_one("#answer", Input)
    field.value = ""
    field.focus()
    await pilot.pause()
    field.insert_text_at_cursor(text)  # emoji and control characters have no key names
    await pilot.pause()
    if submit == "enter":
        await pilot.press("enter")
    else:
        await pilot.click("#next")
    await pilot.pause()


async def start(pilot: Pilot[None], lang: str = "fr", choice: str = "#appointment") -> None:
    await pilot.pause()
    await pilot.click(f"#lang-{lang}")
    await pilot.pause()
    assert screen_name(pilot.app) == "ChoiceScreen"  # type: ignore[arg-type]
    await pilot.click(choice)
    await pilot.pause()


def outbox_payloads(outbox: Outbox) -> list[str]:
    return [r[0] for r in outbox.db.execute("SELECT payload FROM outbox").fetchall()]


# ----- appointment flow ---------------------------------------------------------------------


async def test_appointment_by_name_and_birth_date(kiosk: Kiosk) -> None:
    app = kiosk.app
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        assert screen_name(app) == "LastNameScreen"
        await type_answer(pilot, "NDIAYE")  # forgiving: case, no apostrophe
        assert screen_name(app) == "BirthDateScreen"
        await type_answer(pilot, "7.3.1948", submit="click")
        assert screen_name(app) == "ConfirmScreen"
        assert "N." in str(app.screen.query_one("#initials", Say).render())
        assert "9 h 15" in str(app.screen.query_one("#time", Say).render())
        await pilot.click("#yes")
        await pilot.pause()
        assert screen_name(app) == "TicketScreen"
        ticket = kiosk.queue.tickets()[0]
        assert (ticket.number, ticket.kind, ticket.appointment) == (1, "appointment", "RDV-1001")
        assert app.screen.query_one("#number HugeNumber", HugeNumber).value == "1"
        await pilot.click("#done")
        await pilot.pause()
        assert screen_name(app) == "WelcomeScreen"
        assert app.session.last_name == "" and app.session.birth is None
    # nothing that names the patient left the kiosk
    for payload in outbox_payloads(kiosk.outbox):
        for secret in ("Diaye", "DIAYE", "1948", "N."):
            assert secret not in payload


async def test_appointment_by_code(kiosk: Kiosk) -> None:
    app = kiosk.app
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await pilot.click("#code")
        await pilot.pause()
        assert screen_name(app) == "CodeScreen"
        await type_answer(pilot, "rdv 9999")
        assert "ne trouvons pas ce code" in problem(app)
        await type_answer(pilot, "rdv-1003")
        assert screen_name(app) == "ConfirmScreen"
        assert not app.screen.query("#initials")  # no name typed, none shown
        await pilot.press("enter")  # "Yes" has the focus
        await pilot.pause()
        assert screen_name(app) == "TicketScreen"
        assert kiosk.queue.tickets()[0].appointment == "RDV-1003"


@pytest.mark.parametrize(("name", "birth", "screen", "expected"), [
    ("", None, "LastNameScreen", "Écrivez d'abord quelque chose."),
    ("x" * 200, None, "LastNameScreen", "C'est trop long."),
    ("Du\x00pont\x07\t", None, "LastNameScreen", None),  # control chars dropped: accepted
    ("Dupont 😀", None, "LastNameScreen", "Écrivez seulement des lettres."),
    ("Martin3", None, "LastNameScreen", "Écrivez seulement des lettres."),
    ("Martin", "", "BirthDateScreen", "Écrivez d'abord votre date de naissance."),
    ("Martin", "31/02/1961", "BirthDateScreen", "Nous ne comprenons pas cette date."),
    ("Martin", "hier", "BirthDateScreen", "Nous ne comprenons pas cette date."),
    ("Martin", "02/01/2061", "BirthDateScreen", "Cette date est dans le futur."),
    ("Martin", "02/01/1861", "BirthDateScreen", "Cette date est trop ancienne."),
    ("Martin", "1" * 200, "BirthDateScreen", "C'est trop long."),
    ("Martin", "02/01/1962", "BirthDateScreen", "Nous ne trouvons pas votre rendez-vous."),
    ("Bernard", "05/05/1970", "BirthDateScreen", "pas à cet arrêt"),
])  # fmt: skip
async def test_bad_input_gets_a_friendly_message(kiosk: Kiosk, name: str, birth: str | None,
                                                 screen: str, expected: str | None) -> None:
    app = kiosk.app
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await type_answer(pilot, name)
        if birth is not None:
            assert screen_name(app) == "BirthDateScreen"
            await type_answer(pilot, birth)
        if expected is None:
            assert screen_name(app) == "BirthDateScreen"
            assert app.session.last_name == "Dupont"
            return
        assert screen_name(app) == screen
        assert expected in problem(app)
        await pilot.press("x")  # typing again clears the message
        await pilot.pause()
        assert problem(app) == ""
    assert kiosk.queue.tickets() == []


async def test_already_checked_in(kiosk: Kiosk) -> None:
    book = AppointmentBook(appointments(), KEY)
    kiosk.queue.open(VISIT.visit, booked=book.for_visit(VISIT.visit))
    kiosk.queue.check_in_appointment(appointments().items[2], "M.")
    app = kiosk.app
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot)
        await type_answer(pilot, "martin")
        await type_answer(pilot, "02011961")
        assert screen_name(app) == "BirthDateScreen"
        assert "déjà enregistrée" in problem(app)
    assert len(kiosk.queue.tickets()) == 1


async def test_back_buttons_and_keyboard_only(kiosk: Kiosk) -> None:
    app = kiosk.app
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")  # Français has the focus
        await pilot.pause()
        assert screen_name(app) == "ChoiceScreen"
        await pilot.press("tab", "enter")  # the second big button: no appointment
        await pilot.pause()
        assert screen_name(app) == "PrivacyScreen"
        await pilot.click("#back")
        await pilot.pause()
        assert screen_name(app) == "ChoiceScreen"
        await pilot.click("#back")
        await pilot.pause()
        assert screen_name(app) == "WelcomeScreen"


# ----- walk-in flow -------------------------------------------------------------------------


async def test_walk_in(kiosk: Kiosk) -> None:
    app = kiosk.app
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, choice="#walk-in")
        assert screen_name(app) == "PrivacyScreen"
        retention = str(app.screen.query_one("#retention", Say).render())
        assert "24 heures" in retention
        await pilot.click("#next")
        await pilot.pause()
        assert screen_name(app) == "FirstNameScreen"
        await type_answer(pilot, "1234")
        assert "lettres" in problem(app)
        await type_answer(pilot, "Jean-Pierre")
        assert screen_name(app) == "BirthYearScreen"
        for bad, words in [("19", "4 chiffres"), ("3000", "futur"), ("1850", "trop ancienne"),
                           ("", "d'abord"), ("mil neuf cent", "4 chiffres")]:
            await type_answer(pilot, bad)
            assert words in problem(app), bad
        await type_answer(pilot, "1944")
        assert screen_name(app) == "ReasonScreen"
        await pilot.click("#reason-vaccination")
        await pilot.pause()
        assert screen_name(app) == "TicketScreen"
        [ticket] = kiosk.queue.tickets()
        assert (ticket.kind, ticket.initials, ticket.birth_year, ticket.reason) == (
            "walk_in", "J.", 1944, "vaccination")
    for payload in outbox_payloads(kiosk.outbox):
        assert "1944" not in payload and "vaccination" not in payload and "J." not in payload


async def walk_in_second(pilot: Pilot[None]) -> None:
    """A walk-in checks in, in English, after someone already waiting."""
    await start(pilot, lang="en", choice="#walk-in")
    await pilot.click("#next")
    await pilot.pause()
    await type_answer(pilot, "Li")
    await type_answer(pilot, "1990")
    await pilot.click("#reason-consultation")
    await pilot.pause()
    assert screen_name(pilot.app) == "TicketScreen"  # type: ignore[arg-type]


async def test_ticket_shows_place_and_wait(kiosk: Kiosk) -> None:
    app = kiosk.app
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        kiosk.queue.check_in_walk_in("A.", 1950, "other")
        await walk_in_second(pilot)
        assert "People before you: 1" in str(app.screen.query_one("#ahead", Say).render())
        # the forecast counts the walk-in before and the bookings due before this ticket
        ticket = kiosk.queue.tickets()[-1]
        minutes = wait_minutes(kiosk.queue.estimated_wait(ticket))
        assert minutes >= 15
        wait = str(app.screen.query_one("#wait", Say).render())
        assert wait == f"Waiting time: about {minutes} minutes"


async def test_closed_when_no_visit(tmp_path: Path) -> None:
    k = make_kiosk(tmp_path, visit=None)
    async with k.app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        closed = str(k.app.screen.query_one("#closed", Say).render())
        assert closed == "La borne ouvre quand le bus arrive."
        await pilot.click("#lang-en")
        await pilot.pause()
        assert screen_name(k.app) == "WelcomeScreen"  # nothing to check in to
        closed = str(k.app.screen.query_one("#closed", Say).render())
        assert closed == "The kiosk opens when the bus arrives."
    k.queue.close()


# ----- language ------------------------------------------------------------------------------


async def test_language_switch_and_reset(kiosk: Kiosk) -> None:
    app = kiosk.app
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, lang="en")
        assert str(app.screen.query_one("Title", Title).render()) == "What is your last name?"
        assert str(app.screen.query_one("#next", Button).label) == "Continue"
        await type_answer(pilot, "")
        assert problem(app) == "Please write something first."
        await pilot.click("#back")
        await pilot.click("#back")
        await pilot.pause()
        # back at the welcome screen: the next patient gets the default language
        assert screen_name(app) == "WelcomeScreen"
        assert app.session.language == "fr"
        assert "Bonjour" in str(app.screen.query_one("Title", Title).render())
        await start(pilot, lang="fr")
        title = str(app.screen.query_one("Title", Title).render())
        assert title == "Quel est votre nom de famille ?"


# ----- idle --------------------------------------------------------------------------------


async def test_idle_warning_then_continue(tmp_path: Path) -> None:
    k = make_kiosk(tmp_path, warning_s=1.0, reset_s=30)
    app = k.app
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, lang="en")
        await type_answer(pilot, "Martin")
        assert screen_name(app) == "BirthDateScreen"
        await pilot.pause(1.5)
        assert screen_name(app) == "IdleWarningScreen"
        assert "Are you still there?" in str(app.screen.query_one(Title).render())
        await pilot.click("#continue")
        await pilot.pause()
        assert screen_name(app) == "BirthDateScreen"  # carries on where they were
        assert app.session.last_name == "Martin"
    k.queue.close()


async def test_idle_reset_clears_everything(tmp_path: Path) -> None:
    k = make_kiosk(tmp_path, warning_s=1.0, reset_s=2.0)
    app = k.app
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, lang="en")
        await type_answer(pilot, "Lefèvre-Dupont")
        app.screen.query_one("#answer", Input).value = "23/11/19"
        await pilot.pause(1.4)
        assert screen_name(app) == "IdleWarningScreen"
        await pilot.pause(1.2)
        assert screen_name(app) == "WelcomeScreen"
        assert len(app.screen_stack) == 1
        assert app.session.last_name == "" and app.session.language == "fr"
        texts = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "Lef" not in texts and "23/11" not in texts
        assert "Bonjour" in texts
        # at rest on the welcome screen nothing happens, however long
        await pilot.pause(2.2)
        assert screen_name(app) == "WelcomeScreen"
    k.queue.close()


async def test_ticket_screen_clears_itself(tmp_path: Path) -> None:
    k = make_kiosk(tmp_path, warning_s=1.0, reset_s=1.5)
    app = k.app
    async with app.run_test(size=SIZE) as pilot:
        await start(pilot, choice="#walk-in")
        await pilot.click("#next")
        await pilot.pause()
        await type_answer(pilot, "Zoé")
        await type_answer(pilot, "2001")
        await pilot.click("#reason-renewal")
        await pilot.pause()
        assert screen_name(app) == "TicketScreen"
        await pilot.pause(1.6)
        assert screen_name(app) == "WelcomeScreen"
    k.queue.close()


# ----- staff --------------------------------------------------------------------------------


async def enter_staff(pilot: Pilot[None], pin: str = "2468", via: str = "f12") -> None:
    if via == "f12":
        await pilot.press("f12")
    else:
        await pilot.click("#staff-door")
    await pilot.pause()
    assert screen_name(pilot.app) == "PinScreen"  # type: ignore[arg-type]
    await type_answer(pilot, pin)


async def test_staff_pin_right_and_wrong(kiosk: Kiosk) -> None:
    app = kiosk.app
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await enter_staff(pilot, "0000", via="click")
        assert screen_name(app) == "PinScreen"
        assert problem(app) == "Code faux. Essais restants : 2"
        await type_answer(pilot, "2468")
        assert screen_name(app) == "StaffScreen"
        await pilot.click("#back")
        await pilot.pause()
        assert screen_name(app) == "WelcomeScreen"


async def test_staff_lockout(kiosk: Kiosk) -> None:
    app = kiosk.app
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await enter_staff(pilot, "1111")
        await type_answer(pilot, "2222")
        await type_answer(pilot, "3333")
        assert "Attendez une minute" in problem(app)
        await type_answer(pilot, "2468")  # even the right code, while locked
        assert screen_name(app) == "PinScreen"
        assert "Attendez une minute" in problem(app)
        kiosk.clock.advance(61)
        await type_answer(pilot, "2468")
        assert screen_name(app) == "StaffScreen"


async def test_staff_runs_the_queue(kiosk: Kiosk) -> None:
    app = kiosk.app
    items = appointments().items
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        queue = kiosk.queue
        queue.check_in_appointment(items[0], "N.")  # 09:15, due
        queue.check_in_walk_in("J. P.", 1944, "renewal")
        await enter_staff(pilot)
        table = app.screen.query_one("#queue", DataTable)
        assert table.row_count == 2
        assert [str(c) for c in table.get_row_at(1)] == ["2", "J. P.", "sans RDV", "en attente"]
        assert [str(c) for c in table.get_row_at(0)][:3] == ["1", "N.", "9 h 15"]

        # the booking (09:15) is not due yet at 09:00: the walk-in goes first
        await pilot.click("#call-next")
        await pilot.pause()
        assert app.last_called == 2
        banner = app.screen.query_one("#called", CallBanner)
        assert str(banner.render()) == "Ticket 2 → cabinet" and banner.display
        kiosk.clock.advance(12 * 60)
        await pilot.click("#seen")
        await pilot.pause()
        assert [t.status for t in queue.tickets()] == ["waiting", "seen"]
        assert queue.consult_min() == pytest.approx(12.0)

        await pilot.press("n")  # keyboard: call next
        await pilot.pause()
        assert app.last_called == 1
        await pilot.press("a")  # absent
        await pilot.pause()
        assert [t.status for t in queue.tickets()] == ["absent", "seen"]

        await pilot.click("#call-next")
        await pilot.pause()
        assert "Personne n'attend" in problem(app)

        await pilot.click("#pause")
        await pilot.pause()
        assert queue.paused
        assert str(app.screen.query_one("#pause", Button).label) == "Reprendre"
        queue.check_in_walk_in("Z.", 1980, "other")  # patients may still check in
        await pilot.click("#call-next")
        await pilot.pause()
        assert "pause" in problem(app)
        await pilot.press("p")
        await pilot.pause()
        assert not queue.paused

        # the patient-facing screen shows who is called, large
        await pilot.click("#call-next")
        await pilot.pause()
        assert app.last_called == 3, problem(app)
        await pilot.click("#back")
        await pilot.pause()
        assert screen_name(app) == "WelcomeScreen"
        banner = app.screen.query_one("#called", CallBanner)
        assert banner.display and str(banner.render()) == "Ticket 3 → cabinet"

        # end the session: asked once more, then check-in is closed here
        await enter_staff(pilot)
        await pilot.click("#end")
        await pilot.pause()
        assert screen_name(app) == "ConfirmEndScreen"
        await pilot.click("#no")
        await pilot.pause()
        assert queue.is_open
        await pilot.click("#end")
        await pilot.pause()
        await pilot.click("#yes")
        await pilot.pause()
        assert not queue.is_open
        assert "Session terminée" in str(app.screen.query_one("#summary", Say).render())
        await pilot.click("#back")
        await pilot.pause()
        assert screen_name(app) == "WelcomeScreen"
        assert app.screen.query("#closed")
    states = [p for p in outbox_payloads(kiosk.outbox) if '"kind":"queue"' in p]
    assert states and '"open":false' in states[-1]


# ----- catalogs ---------------------------------------------------------------------------


def test_compiled_catalogs_are_up_to_date() -> None:
    pos = msgfmt.catalogs()
    assert {p.parent.parent.name for p in pos} >= {"fr", "en"}
    for po in pos:
        assert msgfmt.mo_messages(po) == msgfmt.po_messages(po), (
            f"{po.with_suffix('.mo')} is stale: run python -m onboard.kiosk.msgfmt")


def test_every_message_is_in_every_catalog() -> None:
    used = msgfmt.extract_messages()
    assert len(used) > 50
    placeholder = re.compile(r"\{[^}]*\}")
    for po in msgfmt.catalogs():
        known = msgfmt.po_messages(po)
        missing = sorted(set(used) - set(known))
        assert not missing, f"{po}: missing {missing}"
        for msgid in used:  # a translation keeps the same {placeholders}
            assert sorted(placeholder.findall(known[msgid])) == sorted(
                placeholder.findall(msgid)), (po, msgid)


def test_gettext_reads_our_mo_files() -> None:
    i18n.set_language("fr")
    assert i18n._("Continue") == "Continuer"
    assert i18n._("Ticket {number} → consulting room").format(number=12) == "Ticket 12 → cabinet"
    i18n.set_language("en")
    assert i18n._("Continue") == "Continue"
    i18n.set_language("xx")  # no catalog: the English ids, never a crash
    assert i18n._("Continue") == "Continue"
    i18n.set_language(i18n.DEFAULT_LANGUAGE)
    assert i18n.available_languages()[:2] == ["fr", "en"]
