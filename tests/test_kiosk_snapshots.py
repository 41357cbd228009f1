"""A snapshot of every kiosk screen in every language (pytest-textual-snapshot).

The app runs on a fixed clock with a fresh temporary queue, so the pictures only change
when the screens do. After an intended change: `pytest tests/test_kiosk_snapshots.py
--snapshot-update`, then look at the SVGs under tests/__snapshots__/ before committing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input

from onboard.kiosk import i18n
from onboard.kiosk.app import KioskApp
from onboard.kiosk.screens.appointment import (
    BirthDateScreen,
    CodeScreen,
    ConfirmScreen,
    LastNameScreen,
)
from onboard.kiosk.screens.idle import IdleWarningScreen
from onboard.kiosk.screens.staff import ConfirmEndScreen, PinScreen, StaffScreen
from onboard.kiosk.screens.ticket import TicketScreen
from onboard.kiosk.screens.walk_in import (
    BirthYearScreen,
    FirstNameScreen,
    PrivacyScreen,
    ReasonScreen,
)
from onboard.kiosk.screens.welcome import ChoiceScreen, WelcomeScreen
from tests.test_kiosk_flows import SIZE, VISIT, appointments, make_kiosk

LANGUAGES = ["fr", "en"]


def _push(make: Callable[[KioskApp], Screen[Any]]) -> Callable[[KioskApp], None]:
    def step(app: KioskApp) -> None:
        app.push_screen(make(app))
    return step


def _ticket(app: KioskApp) -> TicketScreen:
    app.queue.check_in_walk_in("M. L.", 1950, "consultation")  # someone before
    booked = appointments().items[1]
    return app.ticket_screen(app.queue.check_in_appointment(booked, "L."))


def _staff(app: KioskApp) -> StaffScreen:
    items = appointments().items
    app.queue.check_in_appointment(items[0], "N.")
    app.queue.check_in_walk_in("J. P.", 1944, "renewal")
    app.queue.check_in_appointment(items[2], "M.")
    called = app.queue.call_next()
    assert called is not None
    app.last_called = called.number
    return StaffScreen(app.queue, app.last_called)


def _staff_end(app: KioskApp) -> None:
    app.push_screen(_staff(app))
    app.push_screen(ConfirmEndScreen())


def _unanswered(*_: object) -> Any:
    raise AssertionError("the snapshots draw the screens; nobody answers them")


async def _type_wrong(pilot: Pilot[None]) -> None:
    pilot.app.screen.query_one("#answer", Input).value = "Dupont 😀"
    await pilot.press("enter")


SCREENS: dict[str, tuple[Callable[[KioskApp], None] | None, bool]] = {
    # name: (what to do after choosing the language, whether a visit is open)
    "welcome": (None, True),
    "welcome_closed": (None, False),
    "choice": (_push(lambda app: ChoiceScreen()), True),
    "last_name": (_push(lambda app: LastNameScreen()), True),
    "birth_date": (_push(lambda app: BirthDateScreen(app.today(), _unanswered)), True),
    "code": (_push(lambda app: CodeScreen(_unanswered)), True),
    "confirm": (_push(lambda app: ConfirmScreen(appointments().items[1], "L.", _unanswered,
                                                      ZoneInfo("Europe/Paris"))),
                True),
    "ticket": (_push(_ticket), True),
    "privacy": (_push(lambda app: PrivacyScreen(app.settings.retention_hours)), True),
    "first_name": (_push(lambda app: FirstNameScreen()), True),
    "birth_year": (_push(lambda app: BirthYearScreen(app.today())), True),
    "reason": (_push(lambda app: ReasonScreen(_unanswered)), True),
    "idle_warning": (_push(lambda app: IdleWarningScreen()), True),
    "staff_pin": (_push(lambda app: PinScreen(app.staff_lock)), True),
    "staff_queue": (_push(_staff), True),
    "staff_end": (_staff_end, True),
}


@pytest.fixture(autouse=True)
def _default_language() -> Any:
    yield
    i18n.set_language(i18n.DEFAULT_LANGUAGE)


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("name", list(SCREENS))
def test_screen(name: str, lang: str, tmp_path: Path, snap_compare: Any) -> None:
    step, open_visit = SCREENS[name]
    kiosk = make_kiosk(tmp_path, visit=VISIT if open_visit else None)

    async def before(pilot: Pilot[None]) -> None:
        app = kiosk.app
        app.set_language(lang)
        welcome = app.screen_stack[0]
        assert isinstance(welcome, WelcomeScreen)
        welcome.refresh_words()
        if step is not None:
            step(app)
        await pilot.pause()
        await pilot.pause()

    try:
        assert snap_compare(kiosk.app, terminal_size=SIZE, run_before=before)
    finally:
        kiosk.queue.close()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_error_in_place(lang: str, tmp_path: Path, snap_compare: Any) -> None:
    """A refused answer: the friendly sentence where the patient is looking."""
    kiosk = make_kiosk(tmp_path)

    async def before(pilot: Pilot[None]) -> None:
        kiosk.app.set_language(lang)
        kiosk.app.push_screen(LastNameScreen())
        await pilot.pause()
        await _type_wrong(pilot)
        await pilot.pause()

    try:
        assert snap_compare(kiosk.app, terminal_size=SIZE, run_before=before)
    finally:
        kiosk.queue.close()
