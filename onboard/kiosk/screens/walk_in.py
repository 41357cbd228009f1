"""A patient without an appointment: privacy notice, first name, birth year, reason."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import Screen

from onboard.kiosk.i18n import N_, _
from onboard.kiosk.matching import InputError, clean_text, initials, parse_birth_year
from onboard.kiosk.queue import Ticket
from onboard.kiosk.screens.base import AskScreen
from onboard.kiosk.session import REASONS, error_text
from onboard.kiosk.widgets import BigButton, Problem, Say, Title


class PrivacyScreen(Screen[bool | None]):
    """What is kept, where, for how long: before anything is asked. True: understood."""

    def __init__(self, retention_hours: float) -> None:
        super().__init__()
        self.retention_hours = retention_hours

    def compose(self) -> ComposeResult:
        hours = round(self.retention_hours)
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
        self.dismiss(None)

    @on(BigButton.Pressed, "#next")
    def agree(self) -> None:
        self.dismiss(True)


class FirstNameScreen(AskScreen[str]):
    """The first name, kept only as initials."""

    TITLE_TEXT = N_("What is your first name?")
    HELP_TEXT = N_("You can also write only your initials.")
    PLACEHOLDER = N_("First name")

    def check(self, text: str) -> str:
        return initials(*clean_text(text, max_len=40).split())


class BirthYearScreen(AskScreen[int]):
    TITLE_TEXT = N_("What year were you born?")
    HELP_TEXT = N_("Only the year. Example: 1950.")
    PLACEHOLDER = N_("Year of birth")
    ERROR_WORDS = {"bad_date": N_("Please write 4 numbers. Example: 1950."),
                   "too_long": N_("Please write 4 numbers. Example: 1950."),
                   "future_date": N_("This year is in the future. Please check it."),
                   "too_old": N_("This year is too old. Please check it."),
                   "empty": N_("Please write your year of birth first.")}

    def __init__(self, today: date, typed: str = "") -> None:
        super().__init__(typed)
        self.today = today

    def check(self, text: str) -> int:
        return parse_birth_year(text, self.today)


class ReasonScreen(Screen[Ticket | None]):
    """Why they came, as four big buttons: nothing to type, nothing medical in detail.
    Choosing one checks in (`check_in(reason)`) and dismisses the ticket."""

    def __init__(self, check_in: Callable[[str], Ticket]) -> None:
        super().__init__()
        self.check_in = check_in

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
        self.dismiss(None)

    @on(BigButton.Pressed, ".reason")
    def choose(self, event: BigButton.Pressed) -> None:
        try:
            ticket = self.check_in((event.button.id or "").removeprefix("reason-"))
        except InputError as exc:
            self.query_one("#problem", Problem).show(error_text(exc.code))
            return
        self.dismiss(ticket)
