"""A patient with an appointment: last name and birth date (or a code), then confirm."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from medicobus import contract
from onboard.kiosk.i18n import N_, _
from onboard.kiosk.matching import InputError, clean_text, initials, parse_birth_date
from onboard.kiosk.screens.base import AskScreen, KioskScreen
from onboard.kiosk.session import clock_time, error_text
from onboard.kiosk.widgets import BigButton, Problem, Say, Title

ELSEWHERE = N_("Your appointment is not at this stop. Please ask the assistant.")


class LastNameScreen(AskScreen):
    TITLE_TEXT = N_("What is your last name?")
    HELP_TEXT = N_("Write your last name. Then touch Continue.")
    PLACEHOLDER = N_("Last name")

    def extra(self) -> ComposeResult:
        with Horizontal(classes="aside"):
            yield BigButton(_("I have a code"), id="code")

    def answer(self, text: str) -> None:
        session = self.kiosk.session
        session.last_name = clean_text(text)
        self.app.push_screen(BirthDateScreen())

    @on(BigButton.Pressed, "#code")
    def code(self) -> None:
        self.app.push_screen(CodeScreen())


class BirthDateScreen(AskScreen):
    TITLE_TEXT = N_("What is your date of birth?")
    HELP_TEXT = N_("Day, month, year. Example: 14 07 1950.")
    PLACEHOLDER = N_("Date of birth")
    ERROR_WORDS = {"bad_characters": N_("Please use numbers only. Example: 14 07 1950."),
                   "too_long": N_("This is too long. Example: 14 07 1950."),
                   "empty": N_("Please write your date of birth first.")}

    def answer(self, text: str) -> None:
        kiosk = self.kiosk
        session = kiosk.session
        birth = parse_birth_date(text, kiosk.today())
        session.birth = birth
        found = kiosk.book().match(session.last_name, birth, exclude=kiosk.checked_in())
        confirm_or_explain(self, found, initials(session.last_name))


class CodeScreen(AskScreen):
    TITLE_TEXT = N_("What is your appointment code?")
    HELP_TEXT = N_("The code is on your appointment message.")
    PLACEHOLDER = N_("Code")
    ERROR_WORDS = {"unknown": N_("We cannot find this code. Please check, or ask the assistant."),
                   "empty": N_("Please write your code first."),
                   "too_long": N_("This code is too long. Please check it.")}

    def answer(self, text: str) -> None:
        kiosk = self.kiosk
        if not text.strip():
            raise InputError("empty", "no code")
        if len(text) > 64:
            raise InputError("too_long", "code too long")
        kiosk.session.tried_code = True
        found = kiosk.book().match_code(text)
        confirm_or_explain(self, found, "")


def confirm_or_explain(screen: AskScreen, found: contract.BookedAppointment | None,
                       shown_initials: str) -> None:
    """On to the confirmation if the booking is for here and not checked in yet; otherwise
    raise (or show) why not."""
    kiosk = screen.kiosk
    if found is None:
        raise InputError("unknown", "no booking matches")
    if found.appointment in kiosk.checked_in():
        raise InputError("already", "booking already has a ticket")
    if found.visit != kiosk.visit_id():
        screen.show_problem(ELSEWHERE)
        return
    kiosk.session.appointment = found
    screen.app.push_screen(ConfirmScreen(found, shown_initials))


class ConfirmScreen(KioskScreen):
    """Only the initials and the time: enough to recognise oneself, nothing to overhear."""

    def __init__(self, appointment: contract.BookedAppointment, shown_initials: str) -> None:
        super().__init__()
        self.appointment = appointment
        self.shown_initials = shown_initials

    def compose(self) -> ComposeResult:
        with Vertical(classes="page"):
            yield Title(_("Is this your appointment?"))
            if self.shown_initials:
                yield Say(_("Initials: {initials}").format(initials=self.shown_initials),
                          classes="big-fact", id="initials")
            yield Say(_("Appointment at {time}").format(time=clock_time(self.appointment.time)),
                      classes="big-fact", id="time")
            yield Problem(id="problem")
            with Horizontal(classes="nav"):
                yield BigButton(_("No"), id="back", classes="back")
                yield BigButton(_("Yes, it is me"), id="yes", variant="success")

    def on_mount(self) -> None:
        self.query_one("#yes", BigButton).focus()

    @on(BigButton.Pressed, "#back")
    def back(self) -> None:
        self.app.pop_screen()

    @on(BigButton.Pressed, "#yes")
    def confirm(self) -> None:
        kiosk = self.kiosk
        try:
            ticket = kiosk.queue.check_in_appointment(self.appointment, self.shown_initials)
        except InputError as exc:
            self.query_one("#problem", Problem).show(error_text(exc.code))
            return
        kiosk.show_ticket(ticket)
