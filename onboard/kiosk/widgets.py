"""The kiosk's building blocks: big buttons, big text, and the pieces every screen shares."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Button, Input, Static

from onboard.kiosk.i18n import _

# Pictograms of the first two screens, for a patient who does not read well: the same in
# every language, and in the kiosk's terminal font (DejaVu Sans Mono has these glyphs,
# no emoji). A ticked box and an empty one: yes and no, as easy-read (FALC) documents say.
PICTOGRAMS = {
    "welcome": "⚕",  # the médicobus: medicine
    "touch": "☝",  # touch the screen
    "appointment": "☑",
    "walk_in": "☐",
}


class BigButton(Button):
    """A button several lines high, easy to hit with a finger and to see."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_class("big")  # kept when a caller passes classes of its own


class Title(Static):
    """The one sentence that says what this screen is for."""

    DEFAULT_CLASSES = "title"


class Say(Static):
    """A short sentence of explanation."""

    DEFAULT_CLASSES = "say"


class Problem(Static):
    """Where a friendly error appears, in place, next to what caused it. Empty by default."""

    DEFAULT_CLASSES = "problem"

    text = ""

    def show(self, text: str) -> None:
        self.text = text
        self.update(text)
        self.set_class(bool(text), "visible")

    def clear(self) -> None:
        self.show("")


class KioskInput(Input):
    """A text field sized for a large font; never restricts what can be typed, so every
    refusal comes back as a sentence rather than a key that silently does nothing."""

    DEFAULT_CLASSES = "field"


class StaffDoor(Button):
    """The discreet way into staff mode (F12 on a keyboard): runs the app's `staff` action,
    as the key does."""

    DEFAULT_CLASSES = "staff-door"

    def __init__(self) -> None:
        super().__init__("⚙", id="staff-door", tooltip=None, action="app.staff")
        self.can_focus = False  # patients tabbing through buttons should not land here


# Digits seven cells high, for an old eye: Textual's Digits are three, and a font library
# (pyfiglet) would be a dependency for ten glyphs. Each digit: seven rows of five cells.
_HUGE = {
    "0": (" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "),
    "1": ("  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    "2": (" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"),
    "3": ("#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "),
    "4": ("   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "),
    "5": ("#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "),
    "6": ("  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "),
    "7": ("#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "),
    "8": (" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "),
    "9": (" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "),
}


def huge(number: int) -> str:
    """`number` in seven rows of full blocks."""
    glyphs = [_HUGE[c] for c in str(number)]
    return "\n".join("  ".join(g[row] for g in glyphs).replace("#", "█")
                     for row in range(7))


class HugeNumber(Static):
    """A number in digits seven cells high; `value` is the number as text."""

    DEFAULT_CLASSES = "digits huge"

    def __init__(self, number: int) -> None:
        super().__init__(huge(number))
        self.value = str(number)


class TicketNumber(Vertical):
    """A ticket number drawn in huge digits, with its word above it."""

    DEFAULT_CLASSES = "ticket-number"

    def __init__(self, number: int, label: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.number = number
        self.label = label

    def compose(self) -> ComposeResult:
        yield Static(self.label, classes="ticket-label")
        yield HugeNumber(self.number)


class CallBanner(Static):
    """"Ticket 12 → cabinet" on the patient-facing screen, after staff called someone."""

    DEFAULT_CLASSES = "call-banner"

    def __init__(self, number: int | None, *, id: str | None = None) -> None:
        super().__init__(self.words(number), id=id)
        self.number = number
        self.display = number is not None

    @staticmethod
    def words(number: int | None) -> str:
        if number is None:
            return ""
        return _("Ticket {number} → consulting room").format(number=number)
