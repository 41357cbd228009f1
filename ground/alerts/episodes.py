"""A series of samples replayed into episodes, on the samples' own timestamps.

Replaying the stored series, rather than reacting to samples as they arrive, is what makes
a backlog drained after an outage yield the episode that really happened: neither none
(its samples are older than the live ones already seen) nor several. A sample stands for
the value until the next one (the bus reports on change beyond a deadband), for at most
`hold_s`. Alerts already recorded are history: the replay follows them and only adds what
the data says happened besides (a close, a new episode).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from ground.alerts.storage import Alert


class Condition(Protocol):
    """What the replay needs of a threshold rule (ground.alerts.rules.ThresholdRule)."""

    @property
    def for_s(self) -> float: ...
    @property
    def clear_for_s(self) -> float: ...
    @property
    def hold_s(self) -> float: ...
    def breach(self, v: float) -> bool: ...
    def clear(self, v: float) -> bool: ...


@dataclass
class Episode:
    """One episode found by replaying a series: when it opened, the value then, and when
    it closed (None: still going)."""

    opened_at: datetime
    value_at_open: float
    closed_at: datetime | None = None
    last_value: float | None = None
    alert_id: int | None = None  # the recorded alert it follows, if any
    recorded_close: datetime | None = None  # that alert's recorded close


def replay(rule: Condition, samples: list[tuple[datetime, float]], end: datetime,
           known: Sequence[Alert]) -> tuple[list[Episode], datetime]:
    """Episodes in a time-ordered series. Sample i stands for the value from its time to
    the next sample's, or `end` for the last one, and at most `hold_s`; a gap longer than
    that breaks a run, since nothing is known inside it. Where a `known` (recorded) alert
    was going, the replay is in that episode: recorded history is not rewritten.

    Also returns where the next replay may start: the start of the run in progress, else
    the last sample (before it, nothing can change what is to come)."""
    hold = timedelta(seconds=rule.hold_s)
    need_open = timedelta(seconds=rule.for_s)
    need_clear = timedelta(seconds=rule.clear_for_s)
    recorded = sorted(known, key=lambda a: a.opened_at)
    episodes: list[Episode] = []
    bound: dict[int, Episode] = {}

    def going(t: datetime) -> Episode | None:
        """The recorded alert going at `t` (ended by its record, or by the replay)."""
        for a in recorded:
            ep = bound.get(a.id)
            stop = a.closed_at or (ep.closed_at if ep is not None else None)
            if a.opened_at <= t and (stop is None or t < stop):
                if ep is None:
                    ep = bound[a.id] = Episode(a.opened_at, a.value_at_open or 0.0,
                                               last_value=a.last_value, alert_id=a.id,
                                               recorded_close=a.closed_at)
                    episodes.append(ep)
                return ep
        return None

    current: Episode | None = None
    run: datetime | None = None  # start of the current breaching (or clearing) run
    previous_until: datetime | None = None
    for i, (ts, value) in enumerate(samples):
        following = samples[i + 1][0] if i + 1 < len(samples) else max(end, ts)
        until = min(following, ts + hold)
        if previous_until is not None and previous_until < ts:
            run = None  # a gap: the run's evidence ends there
        previous_until = until
        if current is not None and current.recorded_close is not None \
                and ts >= current.recorded_close:
            current, run = None, None  # its record says it closed: follow the record
        if current is None and (current := going(ts)) is not None:
            run = None
        if current is None:
            if rule.breach(value):
                run = run or ts
                if until - run >= need_open:
                    opened_at = max(run + need_open, ts)
                    current = going(opened_at)
                    if current is None:
                        current = Episode(opened_at, value, last_value=value)
                        episodes.append(current)
                    run = None
            else:
                run = None
        else:
            current.last_value = value
            if rule.clear(value):
                run = run or ts
                if until - run >= need_clear:
                    if current.recorded_close is None:
                        current.closed_at = max(run + need_clear, ts)
                    current, run = None, None
            else:
                run = None
    return episodes, run or samples[-1][0]
