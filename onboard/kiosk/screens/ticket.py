"""The end of both flows: the ticket, big, with the place in the queue and the wait."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen

from onboard.kiosk.i18n import _
from onboard.kiosk.queue import Ticket
from onboard.kiosk.widgets import BigButton, Say, TicketNumber, Title


class TicketScreen(Screen[None]):
    """Dismissed when the patient touches Finished; the app clears it after a while anyway.
    The idle warning never covers it: the ticket is what they must read."""

    def __init__(self, ticket: Ticket, ahead: int, wait_min: int) -> None:
        super().__init__()
        self.ticket = ticket
        self.ahead = ahead  # people called before this ticket
        self.wait_min = wait_min

    def compose(self) -> ComposeResult:
        with Vertical(classes="page"):
            yield Title(_("You are checked in."))
            yield TicketNumber(self.ticket.number, _("Your number"), id="number")
            yield Say(self.ahead_text(), classes="big-fact", id="ahead")
            if self.wait_min > 0:
                yield Say(self.wait_text(), classes="big-fact", id="wait")
            yield Say(_("Please sit down. We will call your number."))
            unprinted = Say(_("The ticket could not be printed. Please remember your number."),
                            classes="problem visible", id="unprinted")
            unprinted.display = False
            yield unprinted
            with Horizontal(classes="nav"):
                yield BigButton(_("Finished"), id="done", variant="success")

    def ahead_text(self) -> str:
        if self.ahead == 0:
            return _("You are next.")
        return _("People before you: {count}").format(count=self.ahead)

    def wait_text(self) -> str:
        return _("Waiting time: about {minutes} minutes").format(minutes=self.wait_min)

    def show_unprinted(self, unprinted: bool) -> None:
        self.query_one("#unprinted", Say).display = unprinted

    def on_mount(self) -> None:
        self.query_one("#done", BigButton).focus()

    @on(BigButton.Pressed, "#done")
    def done(self) -> None:
        self.dismiss(None)
