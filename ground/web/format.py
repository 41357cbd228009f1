"""How the pages write dates, times and numbers, in French first and English beside it.

Babel (the CLDR's data) knows the French month and day names, decimal commas and time
patterns; the few wordings it does not have (the "1er" of a month, a compact age) are
written here. Every text the public pages and the dashboard show goes through these
functions, so a page and its live update always say the same thing the same way.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from decimal import Decimal

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal

from ground.fleet import HALF_LABELS_FR

HALF_LABELS_EN = {"am": "morning", "pm": "afternoon", "day": "all day"}
FR = Locale.parse("fr")  # parsed once: by name, Babel parses the locale on every call


def day_label_fr(day: date) -> str:
    """'lundi 23 novembre'; '1er' for the first of the month, as French writes it (CLDR
    has no ordinal day in its patterns, so it is a literal in the pattern)."""
    pattern = "EEEE '1er' MMMM" if day.day == 1 else "EEEE d MMMM"
    return format_date(day, pattern, locale=FR)


def half_label(half: str, locale: str = "fr") -> str:
    """matin / morning, après-midi / afternoon, journée / all day."""
    labels = HALF_LABELS_FR if locale == "fr" else HALF_LABELS_EN
    return labels.get(half, half)


def _local(moment: datetime, zone: tzinfo | None) -> datetime:
    # Babel converts to the machine's own zone when given none: always name one.
    return moment.astimezone(zone or moment.tzinfo)


def hm(moment: datetime | None, zone: tzinfo | None = None) -> str:
    """'08:30' in `zone` (default: the moment's own); '' for no moment."""
    if moment is None:
        return ""
    local = _local(moment, zone)
    return format_datetime(local, "HH:mm", tzinfo=local.tzinfo, locale=FR)


def hms(moment: datetime, zone: tzinfo | None = None) -> str:
    local = _local(moment, zone)
    return format_datetime(local, "HH:mm:ss", tzinfo=local.tzinfo, locale=FR)


def hour(moment: datetime, zone: tzinfo) -> str:
    """'14h', a chart's hour mark."""
    local = _local(moment, zone)
    return format_datetime(local, "HH'h'", tzinfo=local.tzinfo, locale=FR)


def when(moment: datetime | None, zone: tzinfo, now: datetime) -> str:
    """'14:05' today, '21/11 14:05' another day: the manager reads today's first."""
    if moment is None:
        return ""
    local = _local(moment, zone)
    if local.date() == _local(now, zone).date():
        return hm(local)
    return format_datetime(local, "dd/MM HH:mm", tzinfo=local.tzinfo, locale=FR)


def number(value: float, digits: int = 1) -> str:
    """4.26 -> '4,3' (French decimal comma), -0.0 -> '0'.

    Rounded by Python first (half-even on the float's exact value, as before) so that a
    figure and its alert agree; Babel then writes it the French way. Adding zero turns a
    negative zero into a plain one.
    """
    rounded = Decimal(f"{value:.{digits}f}") + 0
    return format_decimal(rounded, "0." + "0" * digits if digits else "0", locale=FR)


def age(moment: datetime, now: datetime) -> str:
    """'12 min', '2 h 05', '3 j'. Written here: Babel's `format_timedelta` rounds to a
    single unit ('2 heures'), and a manager needs the minutes of a recent silence."""
    minutes = max(0, int((now - moment).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60:02d}"
    return f"{minutes // (24 * 60)} j"
