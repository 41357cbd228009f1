"""A patient with an appointment: last name and birth date (or a code), then confirm."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from zoneinfo import ZoneInfo

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen

from medicobus import contract
from onboard.kiosk.i18n import N_, _
from onboard.kiosk.matching import InputError, clean_text, parse_birth_date
from onboard.kiosk.queue import Ticket
from onboard.kiosk.screens.base import Answer, AskScreen
from onboard.kiosk.session import clock_time, error_text
from onboard.kiosk.widgets import BigButton, KioskInput, Problem, Say, Title

ELSEWHERE = N_("Your appointment is not at this stop. Please ask the assistant.")

class LastNameScreen(AskScreen[str | None]):
    """The last name, cleaned; None when the patient would rather give a code."""

    TITLE_TEXT = N_("What is your last name?")
    HELP_TEXT = N_("Write your last name. Then touch Continue.")
    PLACEHOLDER = N_("Last name")

    def extra(self) -> ComposeResult:
        with Horizontal(classes="aside"):
            yield BigButton(_("I have a code"), id="code")

    def check(self, text: str) -> str | None:
        return clean_text(text)

    @on(BigButton.Pressed, "#code")
    def code(self) -> None:
        self.dismiss(Answer(self.query_one("#answer", KioskInput).value, None))


class BirthDateScreen(AskScreen[contract.BookedAppointment]):
    """The birth date, which with the last name finds the booking: `find(birth)` gives the
    booking for here or raises InputError ("unknown", "already", "elsewhere")."""

    TITLE_TEXT = N_("What is your date of birth?")
    HELP_TEXT = N_("Day, month, year. Example: 14 07 1950.")
    PLACEHOLDER = N_("Date of birth")
    ERROR_WORDS = {"bad_characters": N_("Please use numbers only. Example: 14 07 1950."),
                   "too_long": N_("This is too long. Example: 14 07 1950."),
                   "empty": N_("Please write your date of birth first."),
                   "elsewhere": ELSEWHERE}

    def __init__(self, today: date, find: Callable[[date], contract.BookedAppointment],
                 typed: str = "") -> None:
        super().__init__(typed)
        self.today = today
        self.find = find

    def check(self, text: str) -> contract.BookedAppointment:
        return self.find(parse_birth_date(text, self.today))


class CodeScreen(AskScreen[contract.BookedAppointment]):
    """The code on the appointment message, which finds the booking as `find(code)` does."""

    TITLE_TEXT = N_("What is your appointment code?")
    HELP_TEXT = N_("The code is on your appointment message.")
    PLACEHOLDER = N_("Code")
    ERROR_WORDS = {"unknown": N_("We cannot find this code. Please check, or ask the assistant."),
                   "empty": N_("Please write your code first."),
                   "too_long": N_("This code is too long. Please check it."),
                   "elsewhere": ELSEWHERE}

    def __init__(self, find: Callable[[str], contract.BookedAppointment],
                 typed: str = "") -> None:
        super().__init__(typed)
        self.find = find

    def check(self, text: str) -> contract.BookedAppointment:
        if not text.strip():
            raise InputError("empty", "no code")
        if len(text) > 64:
            raise InputError("too_long", "code too long")
        return self.find(text)


class ConfirmScreen(Screen[Ticket | None]):
    """Only the initials and the time: enough to recognise oneself, nothing to overhear.
    "Yes" checks in (`check_in()`) and dismisses the ticket."""

    def __init__(self, appointment: contract.BookedAppointment, shown_initials: str,
                 check_in: Callable[[], Ticket], zone: ZoneInfo) -> None:
        super().__init__()
        self.appointment = appointment
        self.zone = zone  # the time is shown as the patient's watch says it
        self.shown_initials = shown_initials
        self.check_in = check_in

    def compose(self) -> ComposeResult:
        with Vertical(classes="page"):
            yield Title(_("Is this your appointment?"))
            if self.shown_initials:
                yield Say(_("Initials: {initials}").format(initials=self.shown_initials),
                          classes="big-fact", id="initials")
            yield Say(_("Appointment at {time}").format(
                time=clock_time(self.appointment.time, self.zone)),
                      classes="big-fact", id="time")
            yield Problem(id="problem")
            with Horizontal(classes="nav"):
                yield BigButton(_("No"), id="back", classes="back")
                yield BigButton(_("Yes, it is me"), id="yes", variant="success")

    def on_mount(self) -> None:
        self.query_one("#yes", BigButton).focus()

    @on(BigButton.Pressed, "#back")
    def back(self) -> None:
        self.dismiss(None)

    @on(BigButton.Pressed, "#yes")
    def confirm(self) -> None:
        try:
            ticket = self.check_in()
        except InputError as exc:
            self.query_one("#problem", Problem).show(error_text(exc.code))
            return
        self.dismiss(ticket)
