"""What every kiosk screen shares: a way back to the app, and the "ask one thing" screen."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen

from onboard.kiosk.i18n import _
from onboard.kiosk.matching import InputError
from onboard.kiosk.session import error_text
from onboard.kiosk.widgets import BigButton, KioskInput, Problem, Say, Title

if TYPE_CHECKING:
    from onboard.kiosk.app import KioskApp


class KioskScreen(Screen[None]):
    """A patient-facing screen: reads and writes the app's current session."""

    @property
    def kiosk(self) -> KioskApp:
        from onboard.kiosk.app import KioskApp

        app = self.app
        assert isinstance(app, KioskApp)
        return app


class AskScreen(KioskScreen):
    """One question, one field, Back and Continue: the shape of most FALC steps.

    Subclasses give the words and `answer(text)`, which either moves on or raises
    InputError; the error is shown in place, in the patient's language.
    """

    TITLE_TEXT: ClassVar[str] = ""
    HELP_TEXT: ClassVar[str] = ""
    PLACEHOLDER: ClassVar[str] = ""
    PASSWORD: ClassVar[bool] = False
    ERROR_WORDS: ClassVar[dict[str, str]] = {}

    def compose(self) -> ComposeResult:
        with Vertical(classes="page"):
            yield Title(_(self.TITLE_TEXT))
            if self.HELP_TEXT:
                yield Say(_(self.HELP_TEXT))
            yield KioskInput(placeholder=_(self.PLACEHOLDER), password=self.PASSWORD,
                             id="answer")
            yield Problem(id="problem")
            yield from self.extra()
            with Horizontal(classes="nav"):
                yield BigButton(_("Back"), id="back", classes="back")
                yield BigButton(_("Continue"), id="next", variant="primary")

    def extra(self) -> ComposeResult:
        """More buttons between the field and the navigation (none by default)."""
        yield from ()

    def on_mount(self) -> None:
        self.query_one("#answer", KioskInput).focus()

    @on(BigButton.Pressed, "#back")
    def go_back(self) -> None:
        self.app.pop_screen()

    @on(BigButton.Pressed, "#next")
    @on(KioskInput.Submitted, "#answer")
    def submit(self) -> None:
        field = self.query_one("#answer", KioskInput)
        problem = self.query_one("#problem", Problem)
        problem.clear()
        try:
            self.answer(field.value)
        except InputError as exc:
            problem.show(error_text(exc.code, self.ERROR_WORDS))
            field.focus()

    @on(KioskInput.Changed, "#answer")
    def typing(self, event: KioskInput.Changed) -> None:
        if event.value:  # typing again; not the field being emptied after a wrong PIN
            self.query_one("#problem", Problem).clear()

    def answer(self, text: str) -> None:
        raise NotImplementedError

    def show_problem(self, message: str) -> None:
        """A problem that is not an InputError (words already marked with N_)."""
        self.query_one("#problem", Problem).show(_(message))

