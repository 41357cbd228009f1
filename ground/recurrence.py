"""How a timetable entry recurs: an RFC 5545 RRULE, expanded by python-dateutil's `rrule`,
checked when the fleet is loaded and written out in plain French for the coordinator.

`Recurrence.parse` refuses what a tournée cannot mean (a rule finer than a day, a time of
day in the rule, a count or interval with nothing to count from); `dates(year)` is the
rule's dates in one year (worked out once per rule and year); `describe_fr` says it as a
person would ("un mardi sur deux", "le 1er et le 3e jeudi du mois").

dateutil has no text rendering (rrule.js's `toText` is English only) and keeps its parsed
fields private, so the rule's parts are split here for the checks and the French text;
the dates themselves always come from dateutil.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime

from dateutil.rrule import rrule, rrulestr

DAY_CODES = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
DAYS_FR = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]
MONTHS_FR = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
             "septembre", "octobre", "novembre", "décembre"]  # fmt: skip
_FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_KEYS = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "BYWEEKNO",
         "BYYEARDAY", "COUNT", "UNTIL", "WKST"}  # fmt: skip
# With one of these and no INTERVAL or COUNT, the rule does not depend on where it starts.
_SELF_ANCHORED = ("BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO")


class RecurrenceError(ValueError):
    """An RRULE a tournée cannot use; the message says why, in French then English."""


@dataclass(frozen=True)
class Recurrence:
    text: str  # as written, upper-cased: "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU"
    parts: tuple[tuple[str, str], ...]
    anchor: date | None  # DTSTART: the date the rule counts from

    @classmethod
    def parse(cls, text: str, anchor: date | None) -> Recurrence:
        text = text.strip().upper().removeprefix("RRULE:")
        parts: dict[str, str] = {}
        for item in filter(None, text.split(";")):
            key, sep, value = item.partition("=")
            if not sep or not value:
                raise RecurrenceError(f"règle illisible près de {item!r} / unreadable rule "
                                      "part (KEY=VALUE;KEY=VALUE…)")  # fmt: skip
            if key not in _KEYS:
                raise RecurrenceError(
                    f"{key} n'a pas de sens pour une tournée (les heures sont `arrive` et "
                    f"`depart`) / {key} is not allowed in a tournée's rule")
            if key in parts:
                raise RecurrenceError(f"{key} donné deux fois / {key} given twice")
            parts[key] = value
        freq = parts.get("FREQ")
        if freq not in _FREQS:
            raise RecurrenceError("FREQ doit valoir DAILY, WEEKLY, MONTHLY ou YEARLY / FREQ "
                                  "must be DAILY, WEEKLY, MONTHLY or YEARLY")  # fmt: skip
        interval = parts.get("INTERVAL", "1")
        if not interval.isdigit() or not 1 <= int(interval) <= 52:
            raise RecurrenceError("INTERVAL doit être un entier de 1 à 52 / INTERVAL must be "
                                  "a whole number from 1 to 52")  # fmt: skip
        counts = int(interval) > 1 or "COUNT" in parts
        if anchor is None and (counts or not any(k in parts for k in _SELF_ANCHORED)):
            raise RecurrenceError(
                "cette règle compte à partir d'une date : donnez `anchor` (la date d'une "
                "visite) / this rule counts from a date: give `anchor` (the date of one visit)")
        found = cls(text=";".join(f"{k}={v}" for k, v in parts.items()),
                    parts=tuple(parts.items()), anchor=anchor)  # fmt: skip
        try:
            found._rule(anchor or date(2000, 1, 1))
        except (ValueError, TypeError) as exc:  # dateutil's own reading of the values
            raise RecurrenceError(f"règle invalide / invalid rule: {exc}") from None
        if not found.dates(anchor.year if anchor else 2027) and not found._any_within(10):
            raise RecurrenceError("cette règle ne donne aucune date / this rule gives no date")
        return found

    def _rule(self, start: date) -> rrule:
        rule = rrulestr(self.text, dtstart=datetime.combine(start, datetime.min.time()))
        assert isinstance(rule, rrule)  # one RRULE, never a set: no RDATE/EXDATE parsed
        return rule

    def _any_within(self, years: int) -> bool:
        first = self.anchor.year if self.anchor else 2027
        return any(self.dates(y) for y in range(first, first + years))

    def dates(self, year: int) -> frozenset[date]:
        """The rule's dates in `year` (before the anchor: none)."""
        return _dates(self, year)

    def occurs_on(self, day: date) -> bool:
        return day in _dates(self, day.year)

    @property
    def weekdays(self) -> frozenset[int] | None:
        """The weekdays the rule can fall on (0 = Monday), None if any."""
        byday = dict(self.parts).get("BYDAY")
        if byday is None:
            return None
        return frozenset(DAY_CODES.index(d[-2:]) for d in byday.split(",") if d[-2:] in DAY_CODES)

    def describe_fr(self) -> str:
        return describe_fr(dict(self.parts), self.anchor)


@functools.lru_cache(maxsize=4096)
def _dates(recurrence: Recurrence, year: int) -> frozenset[date]:
    anchor = recurrence.anchor
    if anchor is not None and anchor.year > year:
        return frozenset()
    # Without an anchor the rule does not depend on where it starts: start at the year.
    rule = recurrence._rule(anchor or date(year, 1, 1))
    first, last = datetime(year, 1, 1), datetime(year, 12, 31)
    return frozenset(d.date() for d in rule.between(first, last, inc=True))


def _ordinal_fr(n: int) -> str:
    if n == -1:
        return "dernier"
    if n == -2:
        return "avant-dernier"
    return "1er" if n == 1 else f"{n}e"


def _join_fr(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " et " + words[-1]


def describe_fr(parts: dict[str, str], anchor: date | None = None) -> str:
    """The rule in plain French; what it cannot say simply, it gives as the rule itself."""
    freq, interval = parts["FREQ"], int(parts.get("INTERVAL", "1"))
    days = [d for d in parts.get("BYDAY", "").split(",") if d]
    plain = {k for k in parts if k not in ("FREQ", "INTERVAL", "BYDAY", "WKST")}
    text: str | None = None
    if freq == "WEEKLY" and not plain and all(d in DAY_CODES for d in days):
        names = [DAYS_FR[DAY_CODES.index(d)] for d in days] or (
            [DAYS_FR[anchor.weekday()]] if anchor else [])
        if names:
            every = {1: "chaque", 2: "un {} sur deux", 3: "un {} sur trois",
                     4: "un {} sur quatre"}.get(interval)  # fmt: skip
            if every == "chaque":
                text = "chaque " + _join_fr(names)
            elif every is not None and len(names) == 1:
                text = every.format(names[0])
            else:
                text = f"toutes les {interval} semaines, le " + _join_fr(names)
    elif freq == "MONTHLY" and not plain and days:
        ordinals: list[str] = []
        weekday: str | None = None
        for d in days:
            n, code = d[:-2], d[-2:]
            if not n or code not in DAY_CODES or (weekday not in (None, code)):
                break
            weekday = code
            ordinals.append(_ordinal_fr(int(n)))
        else:
            if weekday is not None:
                name = DAYS_FR[DAY_CODES.index(weekday)]
                month = "du mois" if interval == 1 else f"tous les {interval} mois"
                text = "le " + " et le ".join(ordinals) + f" {name} {month}"
    elif freq == "MONTHLY" and plain == {"BYMONTHDAY"} and not days:
        numbers = [int(n) for n in parts["BYMONTHDAY"].split(",")]
        words = ["dernier jour" if n == -1 else ("1er" if n == 1 else str(n)) for n in numbers]
        month = "de chaque mois" if interval == 1 else f"tous les {interval} mois"
        text = "le " + _join_fr(words) + f" {month}"
    elif freq == "DAILY" and not plain and not days:
        text = "chaque jour" if interval == 1 else f"tous les {interval} jours"
    if text is None:
        return "selon la règle " + ";".join(f"{k}={v}" for k, v in parts.items())
    if interval > 1 and anchor is not None:
        text += f" (à partir du {date_fr(anchor)})"
    return text


def date_fr(day: date) -> str:
    """ "5 janvier 2027", "1er mai 2027"."""
    first = "1er" if day.day == 1 else str(day.day)
    return f"{first} {MONTHS_FR[day.month - 1]} {day.year}"


def season_fr(start: date | None, end: date | None) -> str:
    if start and end:
        return f"du {date_fr(start)} au {date_fr(end)}"
    if start:
        return f"à partir du {date_fr(start)}"
    if end:
        return f"jusqu'au {date_fr(end)}"
    return ""
