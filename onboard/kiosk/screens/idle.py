""""Are you still there?": shown over the current screen when nobody touched it for a while."""

from __future__ import annotations

from textual import events, on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen

from onboard.kiosk.i18n import _
from onboard.kiosk.widgets import BigButton, Say, Title


class IdleWarningScreen(ModalScreen[None]):
    """Any touch or key dismisses it and the patient carries on where they were."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Title(_("Are you still there?"))
            yield Say(_("Touch the screen to continue."))
            yield BigButton(_("Continue"), id="continue", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#continue", BigButton).focus()

    gone = False

    @on(BigButton.Pressed, "#continue")
    def carry_on(self) -> None:
        if not self.gone and self.is_current:
            self.gone = True
            self.dismiss(None)

    def on_mouse_down(self, event: events.MouseDown) -> None:
        event.stop()
        self.carry_on()

    def on_key(self, event: events.Key) -> None:
        event.stop()
        self.carry_on()
