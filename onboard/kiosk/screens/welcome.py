"""The first screens: choose a language, then say whether you have an appointment."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen

from onboard.kiosk import i18n
from onboard.kiosk.i18n import _
from onboard.kiosk.widgets import PICTOGRAMS, BigButton, CallBanner, Say, StaffDoor, Title


@dataclass(frozen=True)
class Reception:
    """What the welcome screen tells whoever walks up: whether check-in is open, whether
    the doctor is on a break, and the ticket called last."""

    open: bool
    paused: bool
    last_called: int | None


class WelcomeScreen(Screen[None]):
    """Always at the bottom of the screen stack: where every patient starts. It never
    dismisses: a language choice is posted to the app as `LanguageChosen`."""

    class LanguageChosen(Message):
        def __init__(self, language: str) -> None:
            super().__init__()
            self.language = language

    def __init__(self, reception: Reception) -> None:
        super().__init__()
        self.reception = reception

    def compose(self) -> ComposeResult:
        reception = self.reception
        with Vertical(classes="page"):
            yield CallBanner(reception.last_called, id="called")
            yield Title(f"{PICTOGRAMS['welcome']}  {_('Hello. Welcome to the médicobus.')}")
            if not reception.open:
                yield Say(_("The kiosk opens when the bus arrives."), id="closed")
                yield Say(_("Please come back a little later."))
            else:
                if reception.paused:
                    yield Say(_("The doctor is taking a short break."), id="paused")
                yield Say(f"{PICTOGRAMS['touch']}  {_('Choose your language.')}", id="choose")
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
        self.post_message(self.LanguageChosen((event.button.id or "").removeprefix("lang-")))

    def show(self, reception: Reception) -> None:
        """Shown again with these facts, in the current language."""
        self.reception = reception
        self.refresh_words()

    def refresh_words(self) -> None:
        self.refresh(recompose=True)
        self.call_after_refresh(self.focus_first)


class ChoiceScreen(Screen[bool | None]):
    """Appointment or not (True, False): two big buttons, and a way back."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="page"):
            yield Title(_("Do you have an appointment?"))
            with Vertical(classes="choices"):
                yield BigButton(f"{PICTOGRAMS['appointment']}  {_('I have an appointment')}",
                                id="appointment", variant="primary")
                yield BigButton(f"{PICTOGRAMS['walk_in']}  {_('I do not have an appointment')}",
                                id="walk-in", variant="primary")
            with Horizontal(classes="nav"):
                yield BigButton(_("Back"), id="back", classes="back")

    def on_mount(self) -> None:
        self.query_one("#appointment", BigButton).focus()

    @on(BigButton.Pressed, "#appointment")
    def appointment(self) -> None:
        self.dismiss(True)

    @on(BigButton.Pressed, "#walk-in")
    def walk_in(self) -> None:
        self.dismiss(False)

    @on(BigButton.Pressed, "#back")
    def back(self) -> None:
        self.dismiss(None)
