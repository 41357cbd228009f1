"""What the kiosk holds about the patient in front of it, and how it words things.

One `Session` per patient: created empty, filled screen by screen, and replaced by a fresh
one when the kiosk returns to the welcome screen (after a ticket, or the idle reset), so
the next patient can never see the previous one's data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from medicobus import contract
from medicobus.clock import Clock
from onboard.kiosk.i18n import N_, _

# The médicobus tours French communes: appointment times are shown in French local time.


@dataclass
class Session:
    """The current patient's answers; never written to disk by the kiosk itself."""

    language: str
    last_name: str = ""
    birth: date | None = None
    appointment: contract.BookedAppointment | None = None
    initials: str = ""
    birth_year: int | None = None
    reason: str = ""


MAX_TRIES = 3
LOCKOUT = timedelta(minutes=1)


class StaffLock:
    """The staff code and the wrong attempts at it, kept across visits to the PIN screen:
    MAX_TRIES wrong codes in a row lock the door for LOCKOUT."""

    def __init__(self, pin: str, clock: Clock) -> None:
        self._pin = pin
        self._clock = clock
        self.failures = 0
        self.locked_until: datetime | None = None

    def locked(self) -> bool:
        return self.locked_until is not None and self._clock.now() < self.locked_until

    def attempt(self, code: str) -> int | None:
        """None when `code` opens the door (the count starts again); otherwise the tries
        left, 0 when this attempt locked the door."""
        if code.strip() == self._pin:
            self.failures, self.locked_until = 0, None
            return None
        self.failures += 1
        if self.failures >= MAX_TRIES:
            self.failures, self.locked_until = 0, self._clock.now() + LOCKOUT
            return 0
        return MAX_TRIES - self.failures


# What an `InputError.code` means, in words a patient understands; screens override some
# (a date field's "bad characters" is not a name field's).
ERRORS: dict[str, str] = {
    "empty": N_("Please write something first."),
    "too_long": N_("This is too long. Please write less."),
    "bad_characters": N_("Please use letters only."),
    "bad_date": N_("We do not understand this date. Example: 14 07 1950."),
    "future_date": N_("This date is in the future. Please check it."),
    "too_old": N_("This date is too old. Please check it."),
    "unknown": N_("We cannot find your appointment. Please check, or ask the assistant."),
    "already": N_("You are already checked in. Please sit down. We will call you."),
    "closed": N_("Check-in is closed here now. Please ask the assistant."),
}

REASONS: dict[str, str] = {
    "consultation": N_("See the doctor"),
    "renewal": N_("Renew a prescription"),
    "vaccination": N_("A vaccine"),
    "other": N_("Something else"),
}

STATUSES: dict[str, str] = {
    "waiting": N_("waiting"),
    "called": N_("called"),
    "seen": N_("seen"),
    "absent": N_("absent"),
}


# What staff see of a printer in trouble (PrinterState's values).
PRINTER_PROBLEMS: dict[str, str] = {
    "absent": N_("Printer not found: tickets are on screen only. Check its cable and power."),
    "no_paper": N_("Printer out of paper: tickets are on screen only."),
    "failed": N_("The printer failed: tickets are on screen only. Check it."),
}


def error_text(code: str, overrides: dict[str, str] | None = None) -> str:
    message = (overrides or {}).get(code) or ERRORS.get(code) or N_("Please check and try again.")
    return _(message)


def clock_time(moment: datetime, zone: ZoneInfo) -> str:
    """14 h 05 in French, 14:05 in English: the words come from the catalog."""
    local = moment.astimezone(zone)
    return _("{hour}:{minute:02d}").format(hour=local.hour, minute=local.minute)


def wait_minutes(wait: timedelta) -> int:
    """Whole minutes, rounded up, never shown as a range the patient must interpret."""
    return max(0, math.ceil(wait.total_seconds() / 60))
