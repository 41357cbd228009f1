"""A patient without an appointment: privacy notice, first name, birth year, reason."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical

from onboard.kiosk.i18n import N_, _
from onboard.kiosk.matching import InputError, clean_text, initials, parse_birth_year
from onboard.kiosk.screens.base import AskScreen, KioskScreen
from onboard.kiosk.session import REASONS, error_text
from onboard.kiosk.widgets import BigButton, Problem, Say, Title


class PrivacyScreen(KioskScreen):
    """What is kept, where, for how long: before anything is asked."""

    def compose(self) -> ComposeResult:
        hours = round(self.kiosk.settings.retention_hours)
        with Vertical(classes="page"):
            yield Title(_("Before we start"))
            yield Say(_("We ask your first name, your year of birth and why you came."))
            yield Say(_("We keep only your initials."))
            yield Say(_("It stays on this bus. It is deleted after {hours} hours.")
                      .format(hours=hours), id="retention")
            yield Say(_("Nothing with your name is sent."))
            with Horizontal(classes="nav"):
                yield BigButton(_("Back"), id="back", classes="back")
                yield BigButton(_("I understand"), id="next", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#next", BigButton).focus()

    @on(BigButton.Pressed, "#back")
    def back(self) -> None:
        self.app.pop_screen()

    @on(BigButton.Pressed, "#next")
    def agree(self) -> None:
        self.app.push_screen(FirstNameScreen())


class FirstNameScreen(AskScreen):
    TITLE_TEXT = N_("What is your first name?")
    HELP_TEXT = N_("You can also write only your initials.")
    PLACEHOLDER = N_("First name")

    def answer(self, text: str) -> None:
        self.kiosk.session.initials = initials(*clean_text(text, max_len=40).split())
        self.app.push_screen(BirthYearScreen())


class BirthYearScreen(AskScreen):
    TITLE_TEXT = N_("What year were you born?")
    HELP_TEXT = N_("Only the year. Example: 1950.")
    PLACEHOLDER = N_("Year of birth")
    ERROR_WORDS = {"bad_date": N_("Please write 4 numbers. Example: 1950."),
                   "too_long": N_("Please write 4 numbers. Example: 1950."),
                   "future_date": N_("This year is in the future. Please check it."),
                   "too_old": N_("This year is too old. Please check it."),
                   "empty": N_("Please write your year of birth first.")}

    def answer(self, text: str) -> None:
        kiosk = self.kiosk
        kiosk.session.birth_year = parse_birth_year(text, kiosk.today())
        self.app.push_screen(ReasonScreen())


class ReasonScreen(KioskScreen):
    """Why they came, as four big buttons: nothing to type, nothing medical in detail."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="page"):
            yield Title(_("Why did you come today?"))
            with Grid(classes="reasons"):
                for key, words in REASONS.items():
                    yield BigButton(_(words), id=f"reason-{key}", classes="reason",
                                    variant="primary")
            yield Problem(id="problem")
            with Horizontal(classes="nav"):
                yield BigButton(_("Back"), id="back", classes="back")

    def on_mount(self) -> None:
        self.query_one(".reason", BigButton).focus()

    @on(BigButton.Pressed, "#back")
    def back(self) -> None:
        self.app.pop_screen()

    @on(BigButton.Pressed, ".reason")
    def choose(self, event: BigButton.Pressed) -> None:
        kiosk = self.kiosk
        session = kiosk.session
        session.reason = (event.button.id or "").removeprefix("reason-")
        if session.birth_year is None:  # cannot happen through the screens; be safe
            self.app.pop_screen()
            return
        try:
            ticket = kiosk.queue.check_in_walk_in(session.initials, session.birth_year,
                                                  session.reason)
        except InputError as exc:
            self.query_one("#problem", Problem).show(error_text(exc.code))
            return
        kiosk.show_ticket(ticket)
