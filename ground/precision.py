"""How precise a published ETA may claim to be: what the public is told of an arrival, by
the accuracy record (ground/eta_record.py) of the last four weeks.

A page that says "14:07" promises the minute; the record says whether the ground keeps
such promises. Fleet-wide (one commune's visits are too few), by horizon bucket
(ground/accuracy.py's) of the *predicted* horizon, the ETA minus the moment it was
published: that is all a page knows when it shows an ETA, the real arrival being still to
come. Per bucket, the spread of the error (the real arrival minus the announced one): its
10th and 90th percentiles, and the 90th percentile of its size. Then:

- the minute ("14:07") when the bucket holds enough predictions (MIN_PREDICTIONS, from
  MIN_VISITS visits) and 9 in 10 of them were within MINUTE_WITHIN (2.5 min: what rounding
  to 5 min would hide anyway, so the minute then says something true);
- rounded to 5 min ("vers 14:05") when 9 in 10 were within AROUND_WITHIN (7.5 min: with
  the rounding's own 2.5 min, "around" is at most 10 min off for 9 in 10, what "around"
  means in daily speech; and a range of that spread would be 15 to 20 min wide, telling no
  more), or when the record holds too few (a new install does not know its precision, so
  it does not claim the minute);
- else a range: the ETA plus the 10th to the 90th percentile of the error, widened outward
  to 5-min marks ("entre 14:00 et 14:20").

Never a time already past: a single time (minute or rounded) before the current minute
becomes "in a few minutes" (SOON: the next 5 min), a range starting before it starts "now"
(BY), and a range ended already is SOON too. Times are worked out in UTC (a 5-min mark is
one in every zone the fleet may use) and handed back in the ETA's zone, so a clock change
inside a range or at a rounding shows the wall time of the real instant.

The table is made at start and once a day, off the request path (`Precision`): readers take
the current immutable `PrecisionTable`; a failed read keeps the previous one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from ground.accuracy import Scored, bucket_of, percentile
from medicobus.clock import Clock

log = logging.getLogger(__name__)

LOOK_BACK = timedelta(weeks=4)  # each weekday's visits scored four times; last month's roads
# The nearest-rank 90th percentile of 30 leaves 3 above it: one odd morning does not decide.
# The record keeps a visit's prediction every minute when near, so 30 could be two visits of
# one day: at least 10 visits as well (a week of one bus, a day or two of a fleet).
MIN_PREDICTIONS = 30
MIN_VISITS = 10
MINUTE_WITHIN = timedelta(minutes=2.5)
AROUND_WITHIN = timedelta(minutes=7.5)
MARK = timedelta(minutes=5)  # rounding, a range's ends, and "a few minutes"
RETRY = timedelta(minutes=15)  # a failed read (the database locked): tried again then
_MINUTE = timedelta(minutes=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Said(StrEnum):
    MINUTE = "minute"  # "14:07"
    AROUND = "around"  # "vers 14:05"
    RANGE = "range"  # "entre 14:00 et 14:20"
    BY = "by"  # "entre maintenant et 14:20": a range that would have started before now
    SOON = "soon"  # "dans quelques minutes"


@dataclass(frozen=True)
class Claim:
    """What the public may be told of an arrival: `earliest` and `latest` (to the minute, in
    the ETA's zone) are equal for one time; `precision_min` is how far it is to be taken
    (1: the minute, 5: rounded, or a range's width)."""

    said: Said
    earliest: datetime
    latest: datetime
    precision_min: int


@dataclass(frozen=True)
class Spread:
    """The recorded error of one horizon bucket (seconds; positive: the bus came later)."""

    n: int
    visits: int
    early_s: float  # 10th percentile of the error
    late_s: float  # 90th percentile
    within_s: float  # 90th percentile of its size

    @property
    def known(self) -> bool:
        return self.n >= MIN_PREDICTIONS and self.visits >= MIN_VISITS


@dataclass(frozen=True)
class PrecisionTable:
    spreads: Mapping[str, Spread]  # by horizon bucket; a bucket without predictions is absent

    def claim(self, eta: datetime, now: datetime) -> Claim:
        """What may be said at `now` of an arrival predicted at `eta`."""
        zone, eta, now = eta.tzinfo, eta.astimezone(UTC), now.astimezone(UTC)
        spread = self.spreads.get(bucket_of(max(0.0, (eta - now).total_seconds() / 60)))
        this_minute = _floor(now, _MINUTE)

        def said(kind: Said, earliest: datetime, latest: datetime, precision: int) -> Claim:
            return Claim(kind, earliest.astimezone(zone), latest.astimezone(zone), precision)

        soon = said(Said.SOON, this_minute, this_minute + MARK, _minutes(MARK))
        if spread is not None and spread.known and spread.within_s > AROUND_WITHIN.total_seconds():
            earliest = _floor(eta + timedelta(seconds=spread.early_s), MARK)
            latest = max(_ceil(eta + timedelta(seconds=spread.late_s), MARK), earliest + MARK)
            if latest <= this_minute:
                return soon
            if earliest < this_minute:
                return said(Said.BY, this_minute, latest, _minutes(latest - this_minute))
            return said(Said.RANGE, earliest, latest, _minutes(latest - earliest))
        if spread is not None and spread.known and spread.within_s <= MINUTE_WITHIN.total_seconds():
            shown, kind, precision = _floor(eta, _MINUTE), Said.MINUTE, 1
        else:
            shown, kind, precision = _floor(eta + MARK / 2, MARK), Said.AROUND, _minutes(MARK)
        return soon if shown < this_minute else said(kind, shown, shown, precision)


NOT_KNOWN = PrecisionTable({})  # nothing recorded: every ETA rounded to 5 min


def precision_table(scored: Sequence[Scored]) -> PrecisionTable:
    """The spread of the scored predictions by bucket of their predicted horizon."""
    groups: dict[str, list[Scored]] = {}
    for s in scored:
        ahead = (s.prediction.arrive - s.prediction.made_at).total_seconds() / 60
        groups.setdefault(bucket_of(max(0.0, ahead)), []).append(s)
    spreads = {}
    for bucket, group in groups.items():
        errors = sorted(s.error_s for s in group)
        spreads[bucket] = Spread(
            n=len(group), visits=len({s.prediction.visit for s in group}),
            early_s=percentile(errors, 10), late_s=percentile(errors, 90),
            within_s=percentile(sorted(abs(e) for e in errors), 90))
    return PrecisionTable(spreads)


Scorer = Callable[[datetime, datetime], Sequence[Scored]]  # since, until -> scored


class Precision:
    """The table of the last LOOK_BACK, made again once a day by `daily` (the service's
    daily thread, and once at start); `table` is read by any thread: an immutable value,
    swapped whole."""

    def __init__(self, scorer: Scorer, clock: Clock) -> None:
        self._scorer = scorer
        self._clock = clock
        self.table = NOT_KNOWN
        self._made_on: date | None = None
        self._failed_at: datetime | None = None

    def daily(self, today: date) -> None:
        """Made again from the record on a new day; a failed read keeps the table it had
        (logged) and is tried again RETRY later."""
        now = self._clock.now()
        if self._made_on == today or (self._failed_at is not None
                                       and now - self._failed_at < RETRY):
            return
        try:
            self.table = precision_table(self._scorer(now - LOOK_BACK, now))
        except Exception:  # locked, disk...: the table is advice, the daily thread goes on
            self._failed_at = now
            log.exception("the ETAs' precision could not be read from the record")
            return
        self._made_on, self._failed_at = today, None

    def claim(self, eta: datetime, now: datetime) -> Claim:
        return self.table.claim(eta, now)


def _floor(t: datetime, step: timedelta) -> datetime:
    return t - (t - _EPOCH) % step


def _ceil(t: datetime, step: timedelta) -> datetime:
    below = _floor(t, step)
    return below if below == t else below + step


def _minutes(span: timedelta) -> int:
    return math.ceil(span.total_seconds() / 60)
