"""The alert engine: applies the rules to what arrived and to the passing time, records
their verdicts and tells the notifier.

Each episode opens one alert, which a person may acknowledge and which closes when the
clear condition holds; it is never opened twice (the storage refuses a second open alert
for the same rule and key, and threshold rules follow the alerts already recorded). Threshold
rules are woken by the samples stored since they last judged, found by rowid (the order of
storing), so a backlog older than live data is replayed on its own timestamps, not missed.
Time-based rules (offline, no GPS) are judged on the clock: call `evaluate()` after each
ingested batch and every ~30 s.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal, Protocol

from ground.alerts.rules import (
    Case,
    Close,
    CodeReport,
    Due,
    MaintenanceItem,
    MaintenanceRule,
    Open,
    Rule,
    Verdict,
)
from ground.alerts.storage import Alert, AlertStorage
from ground.fleet import Fleet
from ground.state import LiveState
from medicobus.clock import Clock

log = logging.getLogger(__name__)

Event = Literal["opened", "acknowledged", "closed"]
CURSOR_SAVE_S = 30.0


class Notifier(Protocol):
    """What the engine needs from ground.notify.Notifier (which must never raise)."""

    def notify(self, event: Event, alert: Alert) -> None: ...


class AlertEngine:
    """Judges `rules` on the vehicles' live state and stored samples; owns `storage` (its
    `close` closes it)."""

    def __init__(self, rules: Sequence[Rule], storage: AlertStorage, state: LiveState,
                 fleet: Fleet, clock: Clock, notifier: Notifier | None = None, *,
                 stale_after: timedelta = timedelta(seconds=900)) -> None:
        self.rules = [r for r in rules if r.enabled]
        self.storage = storage
        self.state = state
        self.fleet = fleet
        self.clock = clock
        self.notifier = notifier
        self.stale_after = stale_after
        self._lock = threading.Lock()  # the pipeline and the 5 s timer both evaluate
        # (vehicle, rule) -> the oldest timestamp of its samples stored since it was last
        # judged: where its replay must start from to see a backlog.
        self._dirty: dict[tuple[str, str], datetime] = {}
        # (vehicle, rule) -> what the rule keeps between judgments (see Case.memory).
        self._memory: dict[tuple[str, str], dict[str, datetime]] = {}
        # (vehicle, rule) -> the code reports it judged last (see Case.reports).
        self._reports: dict[tuple[str, str], dict[str, CodeReport]] = {}
        self._cursor: int | None = None  # rowid of the last sample noted
        self._saved_cursor_at: float | None = None

    # -- public API ------------------------------------------------------------------------

    def evaluate(self, vehicles: set[str] | None = None) -> list[Alert]:
        """Judge every rule for these vehicles (all when None); return the alerts that
        opened or closed, as they are now."""
        chosen = {v.id for v in self.fleet.vehicles} if vehicles is None else set(vehicles)
        changes: list[tuple[Event, Alert]] = []
        with self._lock:
            now = self.clock.now()
            self._collect_new_samples()
            open_now = self.storage.open_by_rule(chosen)
            for vehicle in sorted(chosen):
                vs = self.state.get(vehicle)
                hours = functools.partial(self._service_hours, vehicle, now)
                for rule in self.rules:
                    key = (vehicle, rule.id)
                    case = Case(vehicle, vs, now, self.stale_after, open_now.get(key, {}),
                                self._memory.setdefault(key, {}),
                                self._reports.setdefault(key, {}), self._dirty.pop(key, None),
                                self.storage, hours)
                    try:
                        changes.extend(self._record(vehicle, rule, rule.judge(case)))
                    except Exception:  # one broken rule must not silence the others
                        log.exception("alert rule %s failed for %s", rule.id, vehicle)
                        # What it noted may not have been recorded: the next evaluation
                        # judges the vehicle afresh, from the alerts on record.
                        self._memory.pop(key, None)
                        self._reports.pop(key, None)
        for event, alert in changes:
            self._notify(event, alert)
        latest: dict[int, Alert] = {a.id: a for _, a in changes}
        return list(latest.values())

    def close(self) -> None:
        """Save where judging got to and close the storage (before closing the store)."""
        with self._lock:
            if self._cursor is not None:
                self.storage.save_cursor(self._cursor)
            self.storage.close()

    def open_alerts(self, vehicle: str | None = None) -> list[Alert]:
        return self.storage.open_alerts(vehicle)

    def history(self, vehicle: str, since: datetime, limit: int | None = None) -> list[Alert]:
        """Alerts of the vehicle that were going at any time since `since`, newest first;
        the newest `limit` of them (None: all)."""
        return self.storage.history(vehicle, since, limit)

    def get(self, alert_id: int) -> Alert:
        return self.storage.get(alert_id)

    def acknowledge(self, alert_id: int, person: str) -> Alert:
        """Record who took the alert in hand. The first acknowledgement is kept: it is the
        record of who answered; acknowledging again changes nothing."""
        person = person.strip()
        if not person:
            raise ValueError("say who acknowledges")
        recorded = self.storage.acknowledge(alert_id, person[:120], self.clock.now())
        alert = self.storage.get(alert_id)
        if recorded:
            self._notify("acknowledged", alert)
        return alert

    # -- maintenance -----------------------------------------------------------------------

    def maintenance(self, vehicle: str) -> list[Due]:
        """Where each maintenance item of the vehicle stands now."""
        now = self.clock.now()
        return [d for r in self.rules if isinstance(r, MaintenanceRule)
                for d in r.due(vehicle, self.storage, now)]

    def record_done(self, vehicle: str, item: str, person: str) -> list[Alert]:
        """`person` did `item` on the vehicle now: its interval starts again (from the
        odometer and engine hours now, when the engine reports them) and its reminders
        close. KeyError for an item no rule has for the vehicle."""
        person = person.strip()
        if not person:
            raise ValueError("say who did it")
        rule = next((r for r in self.rules if isinstance(r, MaintenanceRule)
                     and any(i.id == item for i in r.items_of(vehicle, self.storage))), None)
        if rule is None:
            raise KeyError(item)
        self.storage.record_done(vehicle, item, self.clock.now(), person[:120],
                                 *rule.counters(vehicle, self.storage))
        return self.evaluate({vehicle})

    def save_item(self, vehicle: str, item: MaintenanceItem, person: str) -> list[Alert]:
        """A fleet manager added or changed one of the vehicle's maintenance items; its
        reminders follow at once. LookupError when no maintenance rule is configured."""
        if not any(isinstance(r, MaintenanceRule) for r in self.rules):
            raise LookupError("no maintenance rule in the alert rules")
        self.storage.save_item(vehicle, item.id, item.model_copy(update={"vehicles": []})
                               .model_dump_json(), person.strip()[:120] or "?",
                               self.clock.now())
        return self.evaluate({vehicle})

    # -- judging ---------------------------------------------------------------------------

    def _record(self, vehicle: str, rule: Rule,
                verdicts: list[Verdict]) -> list[tuple[Event, Alert]]:
        """Write the rule's verdicts; the events to tell."""
        changes: list[tuple[Event, Alert]] = []
        for v in verdicts:
            if isinstance(v, Open):
                opened = self.storage.record_open(
                    vehicle, rule.id, rule.severity, key=v.key, title_fr=v.title_fr,
                    title_en=v.title_en, unit=v.unit, opened_at=v.opened_at, value=v.value,
                    last=v.last, closed_at=v.closed_at)
                if opened is None:  # already open: the same episode, not a new one
                    continue
                log.warning("alert opened: %s %s (%s)", vehicle, opened.title_en, v.value)
                changes.append(("opened", opened))
                if opened.closed_at is not None:  # a past episode, from a backlog
                    changes.append(("closed", opened))
            elif isinstance(v, Close):
                closed = self.storage.record_close(v.alert_id, v.at, v.last)
                log.info("alert closed: %s %s", vehicle, closed.title_en)
                changes.append(("closed", closed))
            else:
                self.storage.record_last(v.alert_id, v.last)
        return changes

    def _collect_new_samples(self) -> None:
        """Note, per rule, the oldest sample stored since the last look (by rowid, the
        order of storing), so a backlog older than live data is replayed, not missed."""
        if self._cursor is None:
            self._cursor = self.storage.cursor()
        if self._cursor is None:
            # First run on this database: judge from the last day of history only.
            self._cursor = self.storage.newest_sample()
            starts = self.storage.series_since(self.clock.now() - timedelta(days=1))
            self._saved_cursor_at = None
        else:
            starts, self._cursor = self.storage.stored_after(self._cursor)
        for vehicle, sensor, quantity, oldest in starts:
            for rule in self.rules:
                if rule.watches(sensor, quantity):
                    key = (vehicle, rule.id)
                    self._dirty[key] = min(self._dirty.get(key, oldest), oldest)
        # Saved now and then, not at every batch: a commit is a disk flush, and a cursor a
        # little behind after a crash only means judging some samples again, which changes
        # nothing (recorded alerts are followed, not repeated).
        tick = time.monotonic()
        if self._saved_cursor_at is None or tick - self._saved_cursor_at > CURSOR_SAVE_S:
            self.storage.save_cursor(self._cursor)
            self._saved_cursor_at = tick

    def _service_hours(self, vehicle: str, now: datetime) -> tuple[datetime, datetime] | None:
        """Today's service hours: the first arrival to the last departure (None: no visit)."""
        visits = self.fleet.day_visits(vehicle, now.astimezone(self.fleet.zone).date())
        return (visits[0].arrive, visits[-1].depart) if visits else None

    def _notify(self, event: Event, alert: Alert) -> None:
        if self.notifier is None:
            return
        try:
            self.notifier.notify(event, alert)
        except Exception:  # a notifier must not break the engine, even a buggy one
            log.exception("notifier failed for alert %d", alert.id)
