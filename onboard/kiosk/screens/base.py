"""The shape of most FALC steps: one question, one field, Back and Continue.

Screens know nothing of the app: they are given what they show and how to check an
answer, and `dismiss` a result (None for Back); `KioskApp` decides what comes next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen

from onboard.kiosk.i18n import _
from onboard.kiosk.matching import InputError
from onboard.kiosk.session import error_text
from onboard.kiosk.widgets import BigButton, KioskInput, Problem, Say, Title

R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True)
class Answer(Generic[T]):
    """What a question screen gives back: the checked `value`, and the `text` typed, shown
    again in the field if the patient comes back to that question."""

    text: str
    value: T


class FieldScreen(Screen[R | None], Generic[R]):
    """One question, one field, Back and Continue.

    Subclasses give the words and `answer(text)`, which either dismisses a result or raises
    InputError; the error is shown in place, in the patient's language. Back dismisses None.
    """

    TITLE_TEXT: ClassVar[str] = ""
    HELP_TEXT: ClassVar[str] = ""
    PLACEHOLDER: ClassVar[str] = ""
    PASSWORD: ClassVar[bool] = False
    ERROR_WORDS: ClassVar[dict[str, str]] = {}

    def __init__(self, typed: str = "") -> None:
        super().__init__()
        self.typed = typed

    def compose(self) -> ComposeResult:
        with Vertical(classes="page"):
            yield Title(_(self.TITLE_TEXT))
            if self.HELP_TEXT:
                yield Say(_(self.HELP_TEXT))
            yield KioskInput(self.typed, placeholder=_(self.PLACEHOLDER),
                             password=self.PASSWORD, id="answer")
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
        self.dismiss(None)

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


class AskScreen(FieldScreen[Answer[T]]):
    """A question about the patient: `check(text)` gives the answer's value or raises
    InputError; the screen dismisses the Answer."""

    def check(self, text: str) -> T:
        raise NotImplementedError

    def answer(self, text: str) -> None:
        self.dismiss(Answer(text, self.check(text)))
