"""The check-in kiosk on the bus's touchscreen (Textual).

`KioskApp` is built from explicit collaborators (the queue, how to load the day's bookings
and the current visit, the settings and the clock) so tests drive it with Textual's Pilot
against a temporary queue and a fixed clock; `run_kiosk` wires the real ones from the
onboard configuration. Check-in never needs the network: everything it reads is on disk
(the plan and bookings the agent stored), everything it writes goes to the queue's file
and the outbox, which the agent's link drains when the bus has signal.

The app owns the flow; screens (in `screens/`) are given what they show and how to check
an answer, and dismiss a result (None for Back). A patient, in one worker (`patient`):
welcome (language) → choice → appointment (last name, birth date or code, confirmation) or
walk-in (privacy notice, first name, birth year, reason) → ticket; Back shows the previous
screen again with what was typed there. An idle warning over any of them; staff mode
behind a PIN (F12 or the discreet ⚙ button), in a worker of its own (`staff_mode`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Literal, TypeVar

from textual import events, on, work
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Button, Input

from medicobus import contract
from medicobus.clock import Clock
from onboard.config import KioskSettings, OnboardSettings
from onboard.kiosk import i18n, voice
from onboard.kiosk.i18n import _
from onboard.kiosk.matching import AppointmentBook, InputError, initials
from onboard.kiosk.printer import PrinterState, PrintResult, Slip, TicketPrinter
from onboard.kiosk.queue import PatientQueue, Ticket, bus_queue, current_visit
from onboard.kiosk.screens.appointment import (
    BirthDateScreen,
    CodeScreen,
    ConfirmScreen,
    LastNameScreen,
)
from onboard.kiosk.screens.base import Answer
from onboard.kiosk.screens.idle import IdleWarningScreen
from onboard.kiosk.screens.staff import ConfirmEndScreen, PinScreen, StaffScreen
from onboard.kiosk.screens.ticket import TicketScreen
from onboard.kiosk.screens.walk_in import (
    BirthYearScreen,
    FirstNameScreen,
    PrivacyScreen,
    ReasonScreen,
)
from onboard.kiosk.screens.welcome import ChoiceScreen, Reception, WelcomeScreen
from onboard.kiosk.session import PRINTER_PROBLEMS, Session, StaffLock, clock_time, wait_minutes

log = logging.getLogger(__name__)

# For the startup benchmark and smoke tests: write the monotonic time at which the welcome
# screen is ready to this file, and exit if the second variable is set.
READY_FILE_ENV = "MEDICOBUS_KIOSK_READY_FILE"
EXIT_ON_READY_ENV = "MEDICOBUS_KIOSK_EXIT_ON_READY"

_ACTIVITY = (events.Key, events.MouseDown, events.MouseUp, events.MouseScrollDown,
             events.MouseScrollUp, events.Paste)

STATE_EVERY_S = 120.0  # a fresh queue state for the ground at least this often

R = TypeVar("R")
# Where the rest of a patient's path ends: a ticket, or None when they came back.
Ending = Awaitable[Ticket | None]


class KioskApp(App[None], inherit_bindings=False):
    """The kiosk. No Ctrl+Q for patients (staff mode has it); F12 opens staff mode."""

    CSS_PATH = "kiosk.tcss"
    TITLE = "Médicobus"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("f12", "staff", show=False, priority=True)]

    def __init__(self, queue: PatientQueue, book_loader: Callable[[], AppointmentBook],
                 visit_loader: Callable[[], contract.PlannedVisit | None],
                 settings: KioskSettings, clock: Clock, *, visit_poll_s: float = 15.0,
                 printer: TicketPrinter | None = None,
                 ready_file: Path | None = None, exit_on_ready: bool = False) -> None:
        super().__init__()
        self.queue = queue
        self.book_loader = book_loader
        self.visit_loader = visit_loader
        self.settings = settings
        self.clock = clock
        self.visit_poll_s = visit_poll_s
        self.printer = printer if printer is not None and printer.configured else None
        self._printer_told = PrinterState.OK  # what the ground was last told of it
        self.ready_file = ready_file
        self.exit_on_ready = exit_on_ready
        self.visit: contract.PlannedVisit | None = None
        self.session = Session(settings.language)
        self.last_called: int | None = None
        self.staff_lock = StaffLock(settings.staff_pin, clock)
        self._last_activity = time.monotonic()
        self._booked: tuple[str, ...] | None = None
        i18n.set_language(settings.language)

    # --- lifecycle ---

    def get_default_screen(self) -> Screen[None]:
        return WelcomeScreen(self.reception())

    def on_mount(self) -> None:
        self.refresh_visit()
        self.set_interval(self.visit_poll_s, self.refresh_visit)
        self.set_interval(min(1.0, self.settings.idle_warning_s / 4), self.idle_tick)
        self.set_interval(3600, self._purge)
        # Waits shrink as time passes even when nobody touches the kiosk: let the commune's
        # page (and the ground's departure forecast) follow.
        self.set_interval(STATE_EVERY_S, self._publish_state)

    def on_ready(self) -> None:
        if self.ready_file is not None:
            self.ready_file.write_text(f"{time.monotonic()}\n")
        if self.exit_on_ready:
            self.exit()

    def _purge(self) -> None:
        self.queue.purge()

    def _publish_state(self) -> None:
        if self.queue.visit is not None and self.queue.is_open:
            self.queue.publish_state()

    # --- the day: which visit, which bookings ---

    def refresh_visit(self) -> None:
        """Follow the bus: open the queue at the visit it is at, with that visit's
        bookings; reopen with fresh bookings when the ground sent new ones."""
        was_open = self.is_open()
        try:
            visit = self.visit_loader()
        except Exception:  # a damaged plan file must not take the kiosk down
            log.exception("kiosk: cannot read the current visit")
            visit = None
        if visit is not None:
            try:
                booked = self.book().for_visit(visit.visit)
            except Exception:
                log.exception("kiosk: cannot read the day's appointments")
                booked = []
            key = (visit.visit, *sorted(b.appointment for b in booked))
            if self.queue.visit != visit.visit or key != self._booked:
                if self.queue.visit != visit.visit:
                    self._nobody_called()
                self.queue.open(visit.visit, booked=booked)
                self._booked = key
        self.visit = visit
        if was_open != self.is_open() and isinstance(self.screen, WelcomeScreen):
            self.screen.show(self.reception())

    def book(self) -> AppointmentBook:
        return self.book_loader()

    def is_open(self) -> bool:
        """Check-in is possible: the bus is at a visit and staff has not ended it."""
        return (self.visit is not None and self.queue.visit == self.visit.visit
                and self.queue.is_open)

    def reception(self) -> Reception:
        """What the welcome screen says now."""
        return Reception(open=self.is_open(), paused=self.queue.paused,
                         last_called=self.last_called)

    def today(self) -> date:
        return self.clock.now().astimezone(self.settings.zone).date()

    # --- the patient's path ---

    def set_language(self, lang: str) -> None:
        self.session.language = lang
        i18n.set_language(lang)

    @on(WelcomeScreen.LanguageChosen)
    def language_chosen(self, event: WelcomeScreen.LanguageChosen) -> None:
        self.set_language(event.language)
        if self.is_open():
            self.patient()
        else:  # closed: show the message in the chosen language
            self._welcome().show(self.reception())

    @work(group="patient", exclusive=True)
    async def patient(self) -> None:
        """One patient, from the choice to their ticket, or back to the welcome screen."""
        ticket = await self._step(lambda _: ChoiceScreen(), self._chosen)
        if ticket is not None:
            done = self.set_timer(self.settings.idle_warning_s, self.finish_session)
            screen = self.ticket_screen(ticket)
            if self.printer is not None:
                self.print_slip(self.slip(screen))
            if self.settings.speak:
                self.speak(self.spoken(screen), self.session.language)
            await self.push_screen_wait(screen)
            done.stop()
        self.finish_session()

    async def _step(self, screen: Callable[[R | None], Screen[R | None]],
                    then: Callable[[R], Ending]) -> Ticket | None:
        """Show `screen(None)` and go on with `then(result)`; when the patient comes back
        from there, show `screen(result)` again (with what they typed). None: they went
        back from this screen."""
        result: R | None = None
        while True:
            result = await self.push_screen_wait(screen(result))
            if result is None:
                return None
            ticket = await then(result)
            if ticket is not None:
                return ticket

    async def _chosen(self, has_appointment: bool) -> Ticket | None:
        if has_appointment:
            return await self._step(lambda a: LastNameScreen(_typed(a)), self._named)
        hours = self.settings.retention_hours
        return await self._step(lambda _: PrivacyScreen(hours), self._informed)

    # appointment: last name and birth date, or a code; then the confirmation

    async def _named(self, name: Answer[str | None]) -> Ticket | None:
        if name.value is None:  # "I have a code"
            return await self._step(lambda a: CodeScreen(self._by_code, _typed(a)),
                                    lambda found: self._confirm(found.value, "", "code"))
        last_name = self.session.last_name = name.value

        def find(birth: date) -> contract.BookedAppointment:
            self.session.birth = birth
            return self._for_here(self.book().match(last_name, birth,
                                                    exclude=self.checked_in()))

        return await self._step(lambda a: BirthDateScreen(self.today(), find, _typed(a)),
                                lambda found: self._confirm(found.value, initials(last_name)))

    def _by_code(self, code: str) -> contract.BookedAppointment:
        return self._for_here(self.book().match_code(code))

    def _for_here(self, found: contract.BookedAppointment | None) -> contract.BookedAppointment:
        """The booking if it is for this visit and has no ticket yet; else InputError."""
        if found is None:
            raise InputError("unknown", "no booking matches")
        if found.appointment in self.checked_in():
            raise InputError("already", "booking already has a ticket")
        if self.visit is None or found.visit != self.visit.visit:
            raise InputError("elsewhere", "booking at another visit")
        return found

    def checked_in(self) -> set[str]:
        """Appointment ids that already have a ticket at this visit."""
        return {t.appointment for t in self.queue.tickets() if t.appointment}

    async def _confirm(self, found: contract.BookedAppointment, shown: str,
                       found_by: Literal["name", "code"] = "name") -> Ticket | None:
        self.session.appointment = found
        return await self.push_screen_wait(ConfirmScreen(
            found, shown, lambda: self.queue.check_in_appointment(found, shown, found_by),
            self.settings.zone))

    # walk-in: privacy notice, first name, birth year, reason

    async def _informed(self, _: bool) -> Ticket | None:
        return await self._step(lambda a: FirstNameScreen(_typed(a)), self._first_named)

    async def _first_named(self, first: Answer[str]) -> Ticket | None:
        self.session.initials = first.value
        return await self._step(lambda a: BirthYearScreen(self.today(), _typed(a)),
                                self._aged)

    async def _aged(self, year: Answer[int]) -> Ticket | None:
        self.session.birth_year = year.value

        def check_in(reason: str) -> Ticket:
            self.session.reason = reason
            return self.queue.check_in_walk_in(self.session.initials, year.value, reason)

        return await self.push_screen_wait(ReasonScreen(check_in))

    def ticket_screen(self, ticket: Ticket) -> TicketScreen:
        """The ticket with its place in the queue and the forecast wait."""
        return TicketScreen(ticket, ahead=max(0, self.queue.position(ticket) - 1),
                            wait_min=wait_minutes(self.queue.estimated_wait(ticket)))

    # --- the ticket said aloud ---

    def spoken(self, screen: TicketScreen) -> str:
        """What the voice says of the ticket, in the patient's language."""
        words = [_("Your number is {number}.").format(number=screen.ticket.number),
                 screen.ahead_text()]
        if screen.wait_min:
            words.append(screen.wait_text() + ".")
        return " ".join([*words, _("Please sit down. We will call your number.")])

    @work(group="voice", thread=True)
    def speak(self, text: str, language: str) -> None:
        """On a thread of its own: espeak-ng takes seconds to say it."""
        voice.say(self.settings.voice_command, text, language)

    # --- the printed ticket ---

    def slip(self, screen: TicketScreen) -> Slip:
        """The paper ticket, worded now in the patient's language (the printer's thread
        must not ask gettext: the language is the kiosk's, which changes per patient)."""
        ticket = screen.ticket
        place = screen.ahead_text(), *([screen.wait_text()] if screen.wait_min else [])
        commune = self.visit.commune if self.visit is not None else ""
        link = self.settings.follow_link(ticket.token) if ticket.token else None
        return Slip(
            header=("Médicobus" + (f" · {commune}" if commune else ""), _("Your number")),
            number=ticket.number,
            lines=(_("Arrived at {time}").format(
                time=clock_time(ticket.checked_in, self.settings.zone)), *place,
                *([_("Follow your turn on your phone:")] if link else [])),
            qr=link,
            footer=(_("Please sit down. We will call your number."),),
        )  # fmt: skip

    @work(group="printer", thread=True)
    def print_slip(self, slip: Slip) -> None:
        """On a thread of its own: the printer's I/O blocks (a serial timeout, a USB
        printer that went away) and the screen must not wait for it."""
        assert self.printer is not None
        result = self.printer.print(slip)
        self.call_from_thread(self.printed, result)

    def printed(self, result: PrintResult) -> None:
        """Staff learn of a printer in trouble on their screen, and the fleet managers
        from the ground (a `printer` sensor's trouble code, when it changes); a patient
        whose ticket did not print is told to remember the number shown."""
        if result.state != self._printer_told:
            codes = [] if result.state == PrinterState.OK else [result.state.value]
            self.queue.tell(contract.Reading(vehicle=self.queue.vehicle, ts=self.clock.now(),
                                             sensor="printer", values={}, codes=codes))
            self._printer_told = result.state
        for screen in self.screen_stack:
            if isinstance(screen, StaffScreen):
                screen.show_printer(self.printer_problem())
            if isinstance(screen, TicketScreen) and screen.ticket.number == result.number:
                screen.show_unprinted(result.state != PrinterState.OK)

    def printer_problem(self) -> str:
        """What staff should know of the printer now ("" when all is well)."""
        if self.printer is None or self.printer.state == PrinterState.OK:
            return ""
        return _(PRINTER_PROBLEMS[self.printer.state])

    def finish_session(self) -> None:
        """Back to the welcome screen with nothing of this patient left: every screen they
        filled is removed (with its fields), the session is new, the language the default."""
        self.workers.cancel_node(self)  # the paths waiting on those screens
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.session = Session(self.settings.language)
        i18n.set_language(self.settings.language)
        self._last_activity = time.monotonic()
        self._welcome().show(self.reception())

    def _welcome(self) -> WelcomeScreen:
        welcome = self.screen_stack[0]
        assert isinstance(welcome, WelcomeScreen)
        return welcome

    # --- idle: warn, then clear everything ---

    def note_activity(self) -> None:
        self._last_activity = time.monotonic()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, _ACTIVITY):
            self.note_activity()
        await super().on_event(event)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.note_activity()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.note_activity()

    def at_rest(self) -> bool:
        """Nothing of anyone's on screen: the welcome screen in the default language."""
        return (len(self.screen_stack) == 1
                and self.session.language == self.settings.language)

    def idle_tick(self) -> None:
        if self.at_rest() or isinstance(self.screen, TicketScreen):
            self.note_activity()  # the ticket screen is cleared on its own timer
            return
        idle = time.monotonic() - self._last_activity
        if idle >= self.settings.idle_reset_s:
            log.info("kiosk: idle for %.0f s, clearing the session", idle)
            self.finish_session()
        elif idle >= self.settings.idle_warning_s and not isinstance(
                self.screen, IdleWarningScreen | ConfirmEndScreen):
            self.push_screen(IdleWarningScreen(), lambda _: self.note_activity())

    # --- staff ---

    def action_staff(self) -> None:
        if isinstance(self.screen, PinScreen | StaffScreen | ConfirmEndScreen):
            return
        self.note_activity()
        self.staff_mode()

    @work(group="staff", exclusive=True)
    async def staff_mode(self) -> None:
        """The PIN, then the queue; leaving staff mode clears the kiosk for the next
        patient. A wrong PIN and Back returns to whatever was on screen."""
        if await self.push_screen_wait(PinScreen(self.staff_lock)):
            await self.push_screen_wait(StaffScreen(self.queue, self.last_called,
                                                    self.printer_problem()))
            self.finish_session()

    @on(StaffScreen.Called)
    def called(self, event: StaffScreen.Called) -> None:
        self.last_called = event.number

    def _nobody_called(self) -> None:
        """A new visit: nobody called yet, on the staff screen too if it is open."""
        self.last_called = None
        for screen in self.screen_stack:
            if isinstance(screen, StaffScreen):
                screen.last_called = None


def _typed(answer: Answer[R] | None) -> str:
    """What the patient typed last time on this question ("" the first time)."""
    return answer.text if answer is not None else ""


def build_app(settings: OnboardSettings, clock: Clock, **options: object) -> KioskApp:
    """The kiosk wired to the bus's real stores under `settings.data_dir`."""
    from onboard.outbox import Outbox
    from onboard.plan import PlanStore

    kiosk = settings.kiosk
    try:
        key = kiosk.key()
    except OSError as exc:
        raise SystemExit(f"kiosk: cannot read the check-in key {kiosk.key_file}: {exc}") from None
    plans = PlanStore(settings.data_dir / "plan.db")
    printer = TicketPrinter(settings.printer)
    outbox = Outbox(settings.data_dir / "outbox.db", max_rows=settings.outbox.max_rows,
                    reserve_mb=settings.outbox.reserve_mb)
    queue = bus_queue(settings, clock, outbox)

    def load_book() -> AppointmentBook:
        return AppointmentBook(plans.load_appointments(), key)

    def load_visit() -> contract.PlannedVisit | None:
        return current_visit(plans.load(), plans.progress(), clock.now())

    ready = os.environ.get(READY_FILE_ENV)
    return KioskApp(queue, load_book, load_visit, kiosk, clock, printer=printer,
                    ready_file=Path(ready) if ready else None,
                    exit_on_ready=bool(os.environ.get(EXIT_ON_READY_ENV)),
                    **options)  # type: ignore[arg-type]


def run_kiosk(settings: OnboardSettings, clock: Clock) -> None:
    """Run the kiosk full screen in this terminal until staff quits it (Ctrl+Q in staff
    mode) or the process is stopped."""
    app = build_app(settings, clock)
    try:
        app.run()
    finally:
        app.queue.close()
