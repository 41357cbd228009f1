"""Staff mode: behind a PIN, the assistant runs the queue from the same kiosk."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable

from onboard.kiosk.i18n import N_, _
from onboard.kiosk.matching import InputError
from onboard.kiosk.queue import PatientQueue, Ticket
from onboard.kiosk.screens.base import FieldScreen
from onboard.kiosk.session import STATUSES, StaffLock, clock_time, error_text
from onboard.kiosk.widgets import BigButton, CallBanner, KioskInput, Problem, Say, Title

LOCKED = N_("Too many wrong codes. Wait one minute, then try again.")


class PinScreen(FieldScreen[bool]):
    """The staff code, checked by `staff_lock`; dismisses True when it opens."""

    TITLE_TEXT = N_("Staff")
    HELP_TEXT = N_("Write the staff code.")
    PLACEHOLDER = N_("Code")
    PASSWORD = True

    def __init__(self, staff_lock: StaffLock) -> None:
        super().__init__()
        self.staff_lock = staff_lock  # not `lock`: Textual's widgets have one

    def answer(self, text: str) -> None:
        if self.staff_lock.locked():
            self.show_problem(LOCKED)
            return
        left = self.staff_lock.attempt(text)
        if left is None:
            self.dismiss(True)
            return
        if left == 0:
            self.show_problem(LOCKED)
        else:
            self.query_one("#problem", Problem).show(
                _("Wrong code. Tries left: {left}").format(left=left))
        self.query_one("#answer", KioskInput).value = ""


class StaffScreen(Screen[None]):
    """The queue and the assistant's actions, each a big button and a key. Which ticket was
    called last is the app's (the welcome screen shows it): each change is posted as
    `Called`. Back dismisses."""

    class Called(Message):
        def __init__(self, number: int | None) -> None:
            super().__init__()
            self.number = number

    BINDINGS = [
        Binding("n", "call_next", show=False),
        Binding("s", "seen", show=False),
        Binding("a", "absent", show=False),
        Binding("p", "pause", show=False),
        Binding("escape", "back", show=False),
        Binding("ctrl+q", "app.quit", show=False),  # only staff can close the kiosk
    ]

    def __init__(self, queue: PatientQueue, last_called: int | None,
                 printer_problem: str = "") -> None:
        super().__init__()
        self.queue = queue
        self.last_called = last_called
        self.printer_problem = printer_problem

    def compose(self) -> ComposeResult:
        with Vertical(classes="page staff"):
            yield CallBanner(self.last_called, id="called")
            yield Say("", id="summary")
            printer = Problem(id="printer")
            printer.show(self.printer_problem)
            yield printer
            yield DataTable(id="queue", cursor_type="row", zebra_stripes=False)
            yield Problem(id="problem")
            with Grid(classes="staff-actions"):
                yield BigButton(_("Call next"), id="call-next", variant="primary")
                yield BigButton(_("Seen"), id="seen", variant="success")
                yield BigButton(_("Absent"), id="absent", variant="warning")
                yield BigButton("", id="pause")
                yield BigButton(_("End session here"), id="end", variant="error")
                yield BigButton(_("Back"), id="back", classes="back")

    def on_mount(self) -> None:
        table = self.query_one("#queue", DataTable)
        table.add_column(_("Ticket"), key="ticket")
        table.add_column(_("Initials"), key="initials")
        table.add_column(_("Time"), key="time")
        table.add_column(_("Status"), key="status")
        self.refresh_queue()
        self.query_one("#call-next", BigButton).focus()

    def refresh_queue(self, select: int | None = None) -> None:
        queue = self.queue
        table = self.query_one("#queue", DataTable)
        keep = select if select is not None else self.selected_number()
        table.clear()
        tickets = queue.tickets() if queue.visit is not None else []
        for ticket in tickets:
            when = (clock_time(ticket.appointment_time, queue.zone)
                    if ticket.appointment_time else _("no appointment"))
            table.add_row(str(ticket.number), ticket.initials or "—", when,
                          _(STATUSES.get(ticket.status, ticket.status)), key=str(ticket.number))
        if keep is not None and any(t.number == keep for t in tickets):
            table.move_cursor(row=table.get_row_index(str(keep)))
        waiting = sum(t.status == "waiting" for t in tickets)
        if queue.visit is None:
            summary = _("No session: the bus is not at a stop.")
        elif not queue.is_open:
            summary = _("Session ended at this stop. Waiting: {count}").format(count=waiting)
        else:
            summary = _("Waiting: {count}").format(count=waiting)
            if queue.paused:
                summary += " · " + _("Paused")
        self.query_one("#summary", Say).update(summary)
        pause = self.query_one("#pause", BigButton)
        pause.label = _("Resume") if queue.visit is not None and queue.paused else _("Pause")
        banner = self.query_one("#called", CallBanner)
        banner.update(CallBanner.words(self.last_called))
        banner.display = self.last_called is not None

    def show_printer(self, problem: str) -> None:
        """The printer's trouble, or "" once it printed again."""
        self.printer_problem = problem
        self.query_one("#printer", Problem).show(problem)

    def selected_number(self) -> int | None:
        table = self.query_one("#queue", DataTable)
        if table.row_count == 0:
            return None
        row = table.get_row_at(table.cursor_row)
        return int(row[0])

    def selected_or_called(self) -> int | None:
        """The row the assistant picked; else the patient called last."""
        return self.selected_number() or self.last_called

    def called(self, number: int | None) -> None:
        self.last_called = number
        self.post_message(self.Called(number))

    def problem(self, message: str) -> None:
        self.query_one("#problem", Problem).show(message)

    def guarded(self) -> bool:
        if self.queue.visit is None:
            self.problem(_("No session: the bus is not at a stop."))
            return False
        self.query_one("#problem", Problem).clear()
        return True

    @on(BigButton.Pressed, "#call-next")
    def action_call_next(self) -> None:
        if not self.guarded():
            return
        queue = self.queue
        ticket: Ticket | None = queue.call_next()
        if ticket is None:
            if queue.paused:
                self.problem(_("The queue is paused."))
            elif not queue.is_open:
                self.problem(_("The session is ended."))
            else:
                self.problem(_("Nobody is waiting."))
            return
        self.called(ticket.number)
        self.refresh_queue(select=ticket.number)

    @on(BigButton.Pressed, "#seen")
    def action_seen(self) -> None:
        self._mark("seen")

    @on(BigButton.Pressed, "#absent")
    def action_absent(self) -> None:
        self._mark("absent")

    def _mark(self, outcome: str) -> None:
        if not self.guarded():
            return
        number = self.selected_or_called()
        if number is None:
            self.problem(_("Choose a ticket in the list first."))
            return
        queue = self.queue
        try:
            if outcome == "seen":
                queue.mark_seen(number)
            else:
                queue.mark_absent(number)
        except InputError as exc:
            self.problem(error_text(exc.code))
            return
        if self.last_called == number:
            self.called(None)
        self.refresh_queue(select=number)

    @on(BigButton.Pressed, "#pause")
    def action_pause(self) -> None:
        if not self.guarded():
            return
        queue = self.queue
        queue.pause(not queue.paused)
        self.refresh_queue()

    @on(BigButton.Pressed, "#end")
    def end(self) -> None:
        if not self.guarded():
            return

        def done(confirmed: bool | None) -> None:
            if confirmed:
                self.queue.end_session()
                self.refresh_queue()

        self.app.push_screen(ConfirmEndScreen(), done)

    @on(BigButton.Pressed, "#back")
    def action_back(self) -> None:
        self.dismiss(None)


class ConfirmEndScreen(ModalScreen[bool]):
    """Ending the session closes check-in here: asked once more."""

    BINDINGS = [Binding("escape", "no", show=False)]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Title(_("End the session at this stop?"))
            yield Say(_("Patients can no longer check in here."))
            with Horizontal(classes="nav"):
                yield BigButton(_("No"), id="no", classes="back")
                yield BigButton(_("Yes, end it"), id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", BigButton).focus()

    @on(BigButton.Pressed, "#no")
    def action_no(self) -> None:
        self.dismiss(False)

    @on(BigButton.Pressed, "#yes")
    def yes(self) -> None:
        self.dismiss(True)
