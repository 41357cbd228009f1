"""The end of both flows: the ticket, big, with the place in the queue and the wait."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from onboard.kiosk.i18n import _
from onboard.kiosk.queue import Ticket
from onboard.kiosk.screens.base import KioskScreen
from onboard.kiosk.session import wait_minutes
from onboard.kiosk.widgets import BigButton, Say, TicketNumber, Title


class TicketScreen(KioskScreen):
    """Shown for a while (the idle warning time), then the kiosk clears itself; the
    patient can also touch Finished. No warning here: the ticket is what they must read."""

    IDLE_WARNING = False

    def __init__(self, ticket: Ticket) -> None:
        super().__init__()
        self.ticket = ticket

    def compose(self) -> ComposeResult:
        queue = self.kiosk.queue
        ahead = max(0, queue.position(self.ticket) - 1)
        minutes = wait_minutes(queue.estimated_wait(self.ticket))
        with Vertical(classes="page"):
            yield Title(_("You are checked in."))
            yield TicketNumber(self.ticket.number, _("Your number"), id="number")
            if ahead == 0:
                yield Say(_("You are next."), classes="big-fact", id="ahead")
            else:
                yield Say(_("People before you: {count}").format(count=ahead),
                          classes="big-fact", id="ahead")
            if minutes > 0:
                yield Say(_("Waiting time: about {minutes} minutes").format(minutes=minutes),
                          classes="big-fact", id="wait")
            yield Say(_("Please sit down. We will call your number."))
            with Horizontal(classes="nav"):
                yield BigButton(_("Finished"), id="done", variant="success")

    def on_mount(self) -> None:
        self.query_one("#done", BigButton).focus()
        self.set_timer(self.kiosk.settings.idle_warning_s, self.kiosk.finish_session)

    @on(BigButton.Pressed, "#done")
    def done(self) -> None:
        self.kiosk.finish_session()
