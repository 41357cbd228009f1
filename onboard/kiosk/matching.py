"""What a patient types at the kiosk, cleaned and checked, and matched against the day's
bookings without the bus ever knowing who is booked.

The bus holds only keyed digests of each booking's identity (see
`contract.identity_digest`); the kiosk hashes what the patient typed the same way and
compares. Every rejection raises `InputError` with a short `code` the UI turns into a
friendly sentence in the patient's language; the exception's message is English, for logs.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from collections.abc import Iterable
from datetime import date

from medicobus import contract

ERROR_CODES = frozenset({
    "empty", "too_long", "bad_characters", "bad_date", "future_date", "too_old",
    "unknown",  # no booking matches, or no such ticket
    "already",  # this booking already has a ticket
    "elsewhere",  # this booking is at another stop
    "closed",  # no session open at this stop: check-in is not possible now
})  # fmt: skip

OLDEST_BIRTH = date(1900, 1, 1)

# Punctuation that belongs in names: hyphens (keyboards offer several), apostrophes (the
# typewriter one and the typographic ones phones insert) and dots ("J.-P.").
_NAME_PUNCTUATION = frozenset("-\u2010\u2011\u2013'\u2019\u2018.")
# Longest birth-date text worth reading: "07 / 03 / 1948" with room for stray spaces.
_MAX_DATE_LEN = 30

# Day first, as written in France: 07/03/1948, 7-3-1948, 07.03.1948, 07 03 1948.
_DAY_FIRST = re.compile(r"(\d{1,2})\s*[/.\-\s]\s*(\d{1,2})\s*[/.\-\s]\s*(\d{4})")
_DAY_FIRST_PACKED = re.compile(r"(\d{2})(\d{2})(\d{4})")  # 07031948
_ISO = re.compile(r"(\d{4})\s*[-/.]\s*(\d{1,2})\s*[-/.]\s*(\d{1,2})")  # 1948-03-07


class InputError(ValueError):
    """Input the kiosk cannot accept; `code` says why (one of ERROR_CODES)."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_CODES:
            raise AssertionError(f"unknown input error code {code!r}")
        super().__init__(message)
        self.code = code


def _drop_controls(text: str) -> str:
    """Composed form, whitespace controls (tab, newline) as spaces, other control and format
    characters (NUL, escape, zero-width and bidi marks) removed: they are invisible, so the
    patient cannot have meant them, and they must not reach logs or the terminal."""
    text = unicodedata.normalize("NFC", text)
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char.isspace():
            kept.append(" ")
        elif category not in ("Cc", "Cf", "Cs", "Co", "Cn"):
            kept.append(char)
    return " ".join("".join(kept).split())  # also collapses runs of spaces


def _is_name_character(char: str, previous: str) -> bool:
    category = unicodedata.category(char)
    if category.startswith("L") or char == " " or char in _NAME_PUNCTUATION:
        return True
    # A combining accent is part of a name only on a letter (Zalgo-style stacks are not).
    return category.startswith("M") and unicodedata.category(previous).startswith(("L", "M"))


def clean_text(text: str, max_len: int = 60) -> str:
    """A name as typed, made safe: stripped, control characters removed, spaces collapsed.

    Letters of any script, spaces, hyphens, apostrophes and dots are accepted; digits,
    emoji and other symbols raise InputError("bad_characters"); nothing usable raises
    "empty", more than `max_len` characters "too_long".
    """
    cleaned = _drop_controls(text)
    if len(cleaned) > max_len:
        raise InputError("too_long", f"{len(cleaned)} characters, at most {max_len}")
    previous = " "
    for char in cleaned:
        if not _is_name_character(char, previous):
            raise InputError("bad_characters", f"character U+{ord(char):04X} not in a name")
        previous = char
    if not any(unicodedata.category(c).startswith("L") for c in cleaned):
        raise InputError("empty", "no letters")
    return cleaned


def _checked_date_text(text: str) -> str:
    cleaned = _drop_controls(text)
    if not cleaned:
        raise InputError("empty", "no date")
    if len(cleaned) > _MAX_DATE_LEN:
        raise InputError("too_long", f"{len(cleaned)} characters for a date")
    return cleaned


def _read_date(text: str) -> date:
    """Day, month, year from the accepted layouts; "bad_date" if none fits or the date does
    not exist (31/02). Two-digit years are refused: 07/03/24 could be 1924 or 2024."""
    if match := _ISO.fullmatch(text):
        year, month, day = (int(g) for g in match.groups())
    elif match := _DAY_FIRST.fullmatch(text) or _DAY_FIRST_PACKED.fullmatch(text):
        day, month, year = (int(g) for g in match.groups())
    else:
        raise InputError("bad_date", "not a date as DD/MM/YYYY")
    try:
        return date(year, month, day)
    except ValueError:
        raise InputError("bad_date", "no such day in the calendar") from None


def parse_birth_date(text: str, today: date) -> date:
    """A birth date as typed, day first (French): 07/03/1948, 7/3/1948, 07-03-1948,
    07.03.1948, 07 03 1948, 07031948, or 1948-03-07."""
    birth = _read_date(_checked_date_text(text))
    if birth > today:
        raise InputError("future_date", "birth date after today")
    if birth < OLDEST_BIRTH:
        raise InputError("too_old", "birth date before 1900")
    return birth


def parse_birth_year(text: str, today: date) -> int:
    """A walk-in's birth year: four digits, 1900 to this year."""
    cleaned = _checked_date_text(text)
    if not re.fullmatch(r"\d{4}", cleaned):
        raise InputError("bad_date", "not a four-digit year")
    year = int(cleaned)
    if year > today.year:
        raise InputError("future_date", "birth year after this year")
    if year < OLDEST_BIRTH.year:
        raise InputError("too_old", "birth year before 1900")
    return year


def initials(*names: str) -> str:
    """The first letter of each name given, upper case, accents kept: what the kiosk shows
    and staff see instead of a name. initials("Marie", "Lefèvre-Dupont") == "M. L."."""
    letters = []
    for name in names:
        first = next((c for c in unicodedata.normalize("NFC", name) if c.isalpha()), None)
        if first is not None:
            letters.append(first.upper()[0] + ".")  # [0]: "ß".upper() is "SS"
    return " ".join(letters)


def normalise_code(code: str) -> str:
    """An appointment code as printed or typed: case, spaces and hyphens do not matter."""
    return "".join(c for c in _drop_controls(code).casefold() if c not in " -\u2010\u2011\u2013")


class AppointmentBook:
    """The day's bookings as the bus knows them: ids, visits, times and identity digests."""

    def __init__(self, appointments: contract.Appointments | None, key: bytes) -> None:
        if not key:
            raise ValueError("the check-in key is empty")
        self._appointments = appointments
        self._key = key
        items = appointments.items if appointments is not None else []
        self._items = sorted(items, key=lambda a: (a.time, a.appointment))

    @property
    def day(self) -> date | None:
        return self._appointments.day if self._appointments is not None else None

    def __len__(self) -> int:
        return len(self._items)

    def for_visit(self, visit: str) -> list[contract.BookedAppointment]:
        """The bookings at one visit, by time: what `PatientQueue.open` wants."""
        return [a for a in self._items if a.visit == visit]

    def match(self, last_name: str, birth: date,
              exclude: Iterable[str] = frozenset()) -> contract.BookedAppointment | None:
        """The booking of the person with this last name and birth date, or None.

        The same person may be booked twice in a day: the earliest booking not in `exclude`
        (ids already checked in) comes first. If all of theirs are checked in, the first is
        returned anyway, so the queue can say "already checked in" rather than "unknown".
        """
        if self.day is None:
            return None
        digest = contract.identity_digest(self._key, self.day, last_name, birth).encode()
        # Every booking is compared, in constant time each, so the time taken says nothing
        # about where (or whether) a match is.
        found = [a for a in self._items if hmac.compare_digest(a.identity.encode(), digest)]
        return _first_not_excluded(found, set(exclude))

    def match_code(self, code: str) -> contract.BookedAppointment | None:
        """The booking whose id is this code (case, spaces and hyphens ignored), or None.
        Never raises: anything that is not a known code is simply no match."""
        wanted = normalise_code(code).encode()
        if not wanted:
            return None
        found = [a for a in self._items
                 if hmac.compare_digest(normalise_code(a.appointment).encode(), wanted)]
        return found[0] if found else None


def _first_not_excluded(found: list[contract.BookedAppointment],
                        exclude: set[str]) -> contract.BookedAppointment | None:
    for appointment in found:
        if appointment.appointment not in exclude:
            return appointment
    return found[0] if found else None
