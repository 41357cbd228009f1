"""The first screens: choose a language, then say whether you have an appointment."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from onboard.kiosk import i18n
from onboard.kiosk.i18n import _
from onboard.kiosk.screens.base import KioskScreen
from onboard.kiosk.widgets import BigButton, CallBanner, Say, StaffDoor, Title


class WelcomeScreen(KioskScreen):
    """Always at the bottom of the screen stack: where every patient starts."""

    def compose(self) -> ComposeResult:
        kiosk = self.kiosk
        with Vertical(classes="page"):
            yield CallBanner(kiosk.last_called, id="called")
            yield Title(_("Hello. Welcome to the médicobus."))
            if not kiosk.is_open():
                yield Say(_("The kiosk opens when the bus arrives."), id="closed")
                yield Say(_("Please come back a little later."))
            else:
                if kiosk.queue.paused:
                    yield Say(_("The doctor is taking a short break."), id="paused")
                yield Say(_("Choose your language."))
            with Horizontal(classes="choices languages"):
                for lang in i18n.available_languages():
                    selected = "selected" if lang == i18n.current_language() else ""
                    yield BigButton(i18n.language_name(lang), id=f"lang-{lang}",
                                    classes=f"language {selected}")
        yield StaffDoor()

    def on_mount(self) -> None:
        self.focus_first()

    def focus_first(self) -> None:
        buttons = self.query(".language").results(BigButton)
        for button in buttons:
            if button.id == f"lang-{i18n.current_language()}":
                button.focus()
                return

    @on(BigButton.Pressed, ".language")
    def choose_language(self, event: BigButton.Pressed) -> None:
        lang = (event.button.id or "").removeprefix("lang-")
        self.kiosk.set_language(lang)
        if self.kiosk.is_open():
            self.app.push_screen(ChoiceScreen())
        else:  # closed: show the message in the chosen language
            self.refresh_words()

    def refresh_words(self) -> None:
        self.refresh(recompose=True)
        self.call_after_refresh(self.focus_first)

    @on(StaffDoor.Pressed, "#staff-door")
    def staff(self) -> None:
        self.kiosk.action_staff()


class ChoiceScreen(KioskScreen):
    """Appointment or not: two big buttons, and a way back."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="page"):
            yield Title(_("Do you have an appointment?"))
            with Vertical(classes="choices"):
                yield BigButton(_("I have an appointment"), id="appointment", variant="primary")
                yield BigButton(_("I do not have an appointment"), id="walk-in",
                                variant="primary")
            with Horizontal(classes="nav"):
                yield BigButton(_("Back"), id="back", classes="back")

    def on_mount(self) -> None:
        self.query_one("#appointment", BigButton).focus()

    @on(BigButton.Pressed, "#appointment")
    def appointment(self) -> None:
        from onboard.kiosk.screens.appointment import LastNameScreen

        self.app.push_screen(LastNameScreen())

    @on(BigButton.Pressed, "#walk-in")
    def walk_in(self) -> None:
        from onboard.kiosk.screens.walk_in import PrivacyScreen

        self.app.push_screen(PrivacyScreen())

    @on(BigButton.Pressed, "#back")
    def back(self) -> None:
        self.kiosk.finish_session()
