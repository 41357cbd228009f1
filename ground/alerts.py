"""Alerts on vehicle health: rules from config, episodes kept in SQLite, notifications.

A rule has a condition, a duration and a clear condition (as ThingsBoard's alarm rules).
Each episode opens one alert, which a person may acknowledge and which closes when the
clear condition holds; it is never opened twice. Durations and hysteresis are what keep
flapping input (a fridge hovering at 8.0 °C) from opening and closing alerts repeatedly.

Threshold rules are judged on the readings' own timestamps, replaying the stored series,
so a backlog drained after an outage yields the episode that really happened, neither
none (its samples are older than the live ones already seen) nor several. A sample stands
for the value until the next one (the bus reports on change beyond a deadband), for at
most `hold_s`. Time-based rules (offline, no GPS) are judged on the clock: call
`evaluate()` after each ingested batch and every ~30 s.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ground.fleet import Fleet, day_plan
from ground.state import LiveState, VehicleState
from ground.store import Store
from medicobus.clock import Clock

log = logging.getLogger(__name__)

Severity = Literal["info", "warning", "critical"]
Event = Literal["opened", "acknowledged", "closed"]
RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
CURSOR_SAVE_S = 30.0
Seconds = Annotated[float, Field(ge=0, le=7 * 86400)]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, vehicle TEXT NOT NULL, rule TEXT NOT NULL,
    key TEXT NOT NULL DEFAULT '', title_fr TEXT NOT NULL, title_en TEXT NOT NULL,
    severity TEXT NOT NULL, unit TEXT NOT NULL DEFAULT '', opened_at TEXT NOT NULL,
    value_at_open REAL, acknowledged_by TEXT, acknowledged_at TEXT, closed_at TEXT,
    last_value REAL);
-- At most one open alert per vehicle, rule and key (a trouble code): the database itself
-- refuses a second one for the same episode, whatever a restart or a race does.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open ON alerts(vehicle, rule, key)
    WHERE closed_at IS NULL;
CREATE INDEX IF NOT EXISTS alerts_vehicle_opened ON alerts(vehicle, opened_at);
CREATE TABLE IF NOT EXISTS alert_cursor (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


# -- configuration -------------------------------------------------------------------------


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RuleId
    title_fr: Annotated[str, Field(min_length=1, max_length=120)]
    title_en: Annotated[str, Field(min_length=1, max_length=120)]
    severity: Severity = "warning"
    enabled: bool = True


class ThresholdRule(_Rule):
    """A quantity above / below / outside a band for `for_s`; clears once back beyond the
    clear level (hysteresis) for `clear_for_s`. Clear levels default to the trigger's."""

    kind: Literal["threshold"] = "threshold"
    sensor: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    quantity: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    unit: str = ""
    above: float | None = None
    below: float | None = None
    outside: tuple[float, float] | None = None
    for_s: Seconds = 0
    clear_below: float | None = None  # for `above`
    clear_above: float | None = None  # for `below`
    clear_inside: tuple[float, float] | None = None  # for `outside`
    clear_for_s: Seconds = 0
    # The longest a sample is taken to stand for the value when no newer one comes: longer
    # than the sensor's heartbeat, short enough that a bus switched off overnight is not
    # read as "9 °C all night".
    hold_s: Annotated[float, Field(gt=0, le=86400)] = 900

    @model_validator(mode="after")
    def _one_condition(self) -> ThresholdRule:
        given = [n for n in ("above", "below", "outside") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of above, below or outside")
        if self.outside is not None:
            lo, hi = self.outside
            if lo >= hi:
                raise ValueError("outside: the low bound must be below the high bound")
            clo, chi = self.clear_inside or self.outside
            if not lo <= clo < chi <= hi:
                raise ValueError(f"clear_inside must lie within [{lo}, {hi}]")
        if self.above is not None and self.clear_below is not None \
                and self.clear_below > self.above:
            raise ValueError("clear_below must not be above `above`")
        if self.below is not None and self.clear_above is not None \
                and self.clear_above < self.below:
            raise ValueError("clear_above must not be below `below`")
        return self

    def breach(self, v: float) -> bool:
        if self.above is not None:
            return v > self.above
        if self.below is not None:
            return v < self.below
        lo, hi = self.outside or (v, v)
        return v < lo or v > hi

    def clear(self, v: float) -> bool:
        if self.above is not None:
            return v < (self.clear_below if self.clear_below is not None else self.above)
        if self.below is not None:
            return v > (self.clear_above if self.clear_above is not None else self.below)
        lo, hi = self.clear_inside or self.outside or (v, v)
        return lo <= v <= hi


class NewCodeRule(_Rule):
    """A code (OBD-II trouble code, battery alarm) reported that was not set before: one
    alert per code, closed when the sensor reports its codes without it."""

    kind: Literal["new_code"] = "new_code"
    sensors: list[str] | None = None  # None: every sensor that reports codes


class OfflineRule(_Rule):
    """Offline (Last Will) or stale for more than `after_min` during the vehicle's service
    hours: from its first visit's arrival − margin to its last departure + margin today."""

    kind: Literal["offline"] = "offline"
    after_min: Annotated[float, Field(gt=0, le=1440)] = 10
    margin_min: Annotated[float, Field(ge=0, le=240)] = 30
    clear_for_s: Seconds = 60  # back online this long: a one-message blip is not a return


class NoGpsRule(_Rule):
    """No position for `after_min` while the bus is moving: engine readings newer than the
    last fix say so (speed_kmh > 5, or rpm > 0 without a speed), else the last fix's speed."""

    kind: Literal["no_gps"] = "no_gps"
    after_min: Annotated[float, Field(gt=0, le=1440)] = 5
    moving_speed_ms: float = 2.0
    engine_sensor: str = "engine"
    moving_speed_kmh: float = 5.0


AlertRule = Annotated[ThresholdRule | NewCodeRule | OfflineRule | NoGpsRule,
                      Field(discriminator="kind")]


def _unique(rules: list[Any]) -> list[Any]:
    ids = [r.id for r in rules]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate alert rule id: {', '.join(dupes)}")
    return rules


AlertRules = Annotated[list[AlertRule], AfterValidator(_unique)]

DEFAULT_RULES: list[ThresholdRule | NewCodeRule | OfflineRule | NoGpsRule] = [
    ThresholdRule(id="fridge_temp", title_fr="réfrigérateur hors plage",
                  title_en="fridge out of range", severity="critical", sensor="fridge",
                  quantity="temp_c", unit="°C", outside=(2.0, 8.0), for_s=600,
                  clear_inside=(2.5, 7.5), clear_for_s=300),
    ThresholdRule(id="house_battery_soc", title_fr="batterie cellule faible",
                  title_en="house battery low", severity="warning", sensor="battery",
                  quantity="soc_pct", unit="%", below=30.0, for_s=60, clear_above=35.0,
                  clear_for_s=60),
    ThresholdRule(id="coolant_temp", title_fr="moteur en surchauffe",
                  title_en="engine overheating", severity="critical", sensor="engine",
                  quantity="coolant_c", unit="°C", above=105.0, for_s=60, clear_below=100.0,
                  clear_for_s=60),
    NewCodeRule(id="trouble_code", title_fr="nouveau code défaut",
                title_en="new trouble code", severity="warning"),
    OfflineRule(id="offline", title_fr="véhicule hors ligne", title_en="vehicle offline",
                severity="warning", after_min=10),
    NoGpsRule(id="no_gps", title_fr="pas de position GPS en roulant",
              title_en="no GPS fix while moving", severity="warning", after_min=5),
]  # fmt: skip


# -- alerts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    id: int
    vehicle: str
    rule: str
    title_fr: str
    title_en: str
    severity: str
    opened_at: datetime
    value_at_open: float | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    closed_at: datetime | None
    last_value: float | None
    key: str = ""  # what tells apart alerts of one rule: "engine:P0301" for a trouble code
    unit: str = ""  # of the values: "°C", "%", "min"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class Notifier(Protocol):
    """What the engine needs from ground.notify.Notifier (which must never raise)."""

    def notify(self, event: Event, alert: Alert) -> None: ...


@dataclass
class _Episode:
    """One episode found by replaying a series: when it opened, the value then, and when
    it closed (None: still going)."""

    opened_at: datetime
    value_at_open: float
    closed_at: datetime | None = None
    last_value: float | None = None
    alert_id: int | None = None  # the recorded alert it follows, if any
    recorded_close: datetime | None = None  # that alert's recorded close


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class AlertEngine:
    def __init__(self, rules: Sequence[ThresholdRule | NewCodeRule | OfflineRule | NoGpsRule],
                 store: Store, state: LiveState, fleet: Fleet, clock: Clock,
                 notifier: Notifier | None = None, *,
                 stale_after: timedelta = timedelta(seconds=900)) -> None:
        self.rules = [r for r in rules if r.enabled]
        self.store = store
        self.state = state
        self.fleet = fleet
        self.clock = clock
        self.notifier = notifier
        self.stale_after = stale_after
        self._lock = threading.Lock()  # the ingest thread and the 30 s timer both evaluate
        # (vehicle, threshold rule) -> the oldest timestamp of its samples stored since it
        # was last judged: where its replay must start from to see a backlog.
        self._dirty: dict[tuple[str, str], datetime] = {}
        self._back_since: dict[tuple[str, str], datetime] = {}  # offline rule: online again
        self._moving_since: dict[str, datetime] = {}  # no fix ever, but moving
        self._plans: dict[tuple[str, date], tuple[datetime, datetime] | None] = {}
        # (vehicle, threshold rule) -> where its next replay may start, when data comes in
        # order: so each new sample costs a short replay, not the whole lookback.
        self._resume: dict[tuple[str, str], datetime] = {}
        self._cursor: int | None = None  # rowid of the last sample noted
        self._saved_cursor_at: float | None = None
        with self._db():
            self.store.db.executescript(_SCHEMA)

    # -- public API ------------------------------------------------------------------------

    def evaluate(self, vehicles: set[str] | None = None) -> list[Alert]:
        """Judge every rule for these vehicles (all when None); return the alerts that
        opened or closed, as they are now."""
        chosen = {v.id for v in self.fleet.vehicles} if vehicles is None else set(vehicles)
        changes: list[tuple[Event, Alert]] = []
        with self._lock:
            now = self.clock.now()
            self._collect_new_samples()
            for vehicle in sorted(chosen):
                vs = self.state.get(vehicle)
                for rule in self.rules:
                    try:
                        changes.extend(self._judge(rule, vehicle, vs, now))
                    except Exception:  # one broken rule must not silence the others
                        log.exception("alert rule %s failed for %s", rule.id, vehicle)
        for event, alert in changes:
            self._notify(event, alert)
        latest: dict[int, Alert] = {a.id: a for _, a in changes}
        return list(latest.values())

    def close(self) -> None:
        """Save where judging got to (call before closing the store)."""
        with self._lock:
            if self._cursor is not None:
                self._save_cursor()

    def open_alerts(self, vehicle: str | None = None) -> list[Alert]:
        where, args = "closed_at IS NULL", []
        if vehicle is not None:
            where, args = where + " AND vehicle = ?", [vehicle]
        return self._select(f"{where} ORDER BY opened_at, id", args)

    def history(self, vehicle: str, since: datetime) -> list[Alert]:
        """Alerts of the vehicle that were going at any time since `since`, newest first."""
        return self._select("vehicle = ? AND (closed_at IS NULL OR closed_at >= ? "
                            "OR opened_at >= ?) ORDER BY opened_at DESC, id DESC",
                            [vehicle, _iso(since), _iso(since)])

    def get(self, alert_id: int) -> Alert:
        found = self._select("id = ?", [alert_id])
        if not found:
            raise KeyError(alert_id)
        return found[0]

    def acknowledge(self, alert_id: int, person: str) -> Alert:
        """Record who took the alert in hand. The first acknowledgement is kept: it is the
        record of who answered; acknowledging again changes nothing."""
        person = person.strip()
        if not person:
            raise ValueError("say who acknowledges")
        with self._db():
            cur = self.store.db.execute(
                "UPDATE alerts SET acknowledged_by = ?, acknowledged_at = ? "
                "WHERE id = ? AND acknowledged_by IS NULL",
                [person[:120], _iso(self.clock.now()), alert_id])
            self.store.db.conn.commit()
        alert = self.get(alert_id)
        if cur.rowcount:
            self._notify("acknowledged", alert)
        return alert

    # -- rules -----------------------------------------------------------------------------

    def _judge(self, rule: ThresholdRule | NewCodeRule | OfflineRule | NoGpsRule,
               vehicle: str, vs: VehicleState, now: datetime) -> list[tuple[Event, Alert]]:
        if isinstance(rule, ThresholdRule):
            return self._threshold(rule, vehicle, vs, now)
        if isinstance(rule, NewCodeRule):
            return self._codes(rule, vehicle, vs, now)
        if isinstance(rule, OfflineRule):
            return self._offline(rule, vehicle, vs, now)
        return self._no_gps(rule, vehicle, vs, now)

    def _threshold(self, rule: ThresholdRule, vehicle: str, vs: VehicleState,
                   now: datetime) -> list[tuple[Event, Alert]]:
        dirty = self._dirty.pop((vehicle, rule.id), None)
        latest = vs.readings.get((rule.sensor, rule.quantity))
        if dirty is None and latest is not None and latest[1] is not None:
            # Nothing new stored: only time can change things, and only while the latest
            # value is on its way to opening (breaching) or closing (clearing) an alert.
            is_open = self._open(vehicle, rule.id) is not None
            if not (rule.clear(latest[1]) if is_open else rule.breach(latest[1])):
                return []
        elif dirty is None and latest is None:
            return []
        resume = self._resume.get((vehicle, rule.id))
        if resume is not None and (dirty is None or dirty >= resume):
            start = resume  # in order: go on from where the last replay left off
        else:
            # Older data came in (a backlog), or nothing was judged yet since the start:
            # replay from far enough back to catch a run already going then.
            lookback = timedelta(seconds=rule.for_s + rule.clear_for_s + rule.hold_s + 60)
            start = min(dirty or now, now) - lookback
        samples = self._samples(vehicle, rule, start)
        if not samples:
            return []
        # Alerts already recorded in the window are history: the replay follows them and
        # only adds what the data says happened besides (a close, a new episode).
        known = self._select("vehicle = ? AND rule = ? AND key = '' AND "
                             "(closed_at IS NULL OR closed_at >= ?) ORDER BY opened_at",
                             [vehicle, rule.id, _iso(samples[0][0])])
        # While the bus is connected, the last sample stands until now (it reports on
        # change); once it is offline, nothing is known past its last sample.
        end = now if vs.connection != "offline" else samples[-1][0]
        episodes, self._resume[(vehicle, rule.id)] = _replay(rule, samples, end, known)
        return self._reconcile(rule, vehicle, episodes, {a.id: a for a in known})

    def _samples(self, vehicle: str, rule: ThresholdRule,
                 start: datetime) -> list[tuple[datetime, float]]:
        with self._db():
            # The last sample before the window still stands for the value at its start.
            seed = self.store.db.execute(
                "SELECT ts, value FROM samples WHERE vehicle = ? AND sensor = ? AND "
                "quantity = ? AND ts < ? AND value IS NOT NULL ORDER BY ts DESC LIMIT 1",
                [vehicle, rule.sensor, rule.quantity, _iso(start)]).fetchone()
        rows = self.store.series(vehicle, rule.sensor, rule.quantity, start.astimezone(UTC))
        # A flagged sample (null value) says nothing about the quantity: it neither
        # breaches nor clears, so it is left out rather than read as a value.
        out = [(ts, v) for ts, v, _ in rows if v is not None]
        if seed is not None:
            out.insert(0, (datetime.fromisoformat(seed[0]), float(seed[1])))
        out.sort(key=lambda s: s[0])
        return out

    def _reconcile(self, rule: ThresholdRule, vehicle: str, episodes: list[_Episode],
                   known: dict[int, Alert]) -> list[tuple[Event, Alert]]:
        changes: list[tuple[Event, Alert]] = []
        for ep in episodes:
            alert = known.get(ep.alert_id) if ep.alert_id is not None else None
            if alert is None:
                # A new episode; from a drained backlog it may be over already: it is
                # recorded (and told) all the same, as the cold chain record needs it.
                opened = self._insert(vehicle, rule, "", rule.title_fr, rule.title_en,
                                      rule.unit, ep.opened_at, ep.value_at_open,
                                      ep.last_value, ep.closed_at)
                if opened is not None:
                    changes.append(("opened", opened))
                    if opened.closed_at is not None:
                        changes.append(("closed", opened))
            elif alert.is_open:
                if ep.closed_at is not None:
                    changes.append(("closed", self._close(alert.id, ep.closed_at,
                                                          ep.last_value)))
                elif ep.last_value != alert.last_value:
                    self._set_last(alert.id, ep.last_value)
        return changes

    def _codes(self, rule: NewCodeRule, vehicle: str, vs: VehicleState,
               now: datetime) -> list[tuple[Event, Alert]]:
        changes: list[tuple[Event, Alert]] = []
        open_by_key = {a.key: a for a in self._select(
            "vehicle = ? AND rule = ? AND closed_at IS NULL", [vehicle, rule.id])}
        for sensor, (ts, codes) in sorted(vs.codes.items()):
            if rule.sensors is not None and sensor not in rule.sensors:
                continue
            current = {f"{sensor}:{c}" for c in codes}
            for code in sorted(set(codes)):
                key = f"{sensor}:{code}"
                if key not in open_by_key:
                    opened = self._insert(vehicle, rule, key, f"{rule.title_fr} {code}",
                                          f"{rule.title_en} {code}", "", ts, None, None)
                    if opened is not None:
                        changes.append(("opened", opened))
            for key, alert in open_by_key.items():
                # Only codes opened at or before this report can be cleared by it: an
                # older report arriving late must not close a newer code.
                if key.startswith(f"{sensor}:") and key not in current \
                        and alert.opened_at <= ts:
                    changes.append(("closed", self._close(alert.id, ts, None)))
        return changes

    def _offline(self, rule: OfflineRule, vehicle: str, vs: VehicleState,
                 now: datetime) -> list[tuple[Event, Alert]]:
        alert = self._open(vehicle, rule.id)
        presence = vs.presence(now, self.stale_after)
        key = (vehicle, rule.id)
        if presence == "online":
            if alert is None:
                self._back_since.pop(key, None)
                return []
            back = self._back_since.setdefault(key, now)
            if now - back >= timedelta(seconds=rule.clear_for_s):
                self._back_since.pop(key, None)
                return [("closed", self._close(alert.id, back, None))]
            return []
        self._back_since.pop(key, None)
        window = self._service_window(vehicle, now, timedelta(minutes=rule.margin_min))
        if alert is not None:
            if window is None or not window[0] <= now:
                return []
            return self._update_last(alert, _minutes(now - self._down_since(vs, window[0])))
        if window is None or not window[0] <= now <= window[1]:
            return []
        down = max(self._down_since(vs, window[0]), window[0])
        due = down + timedelta(minutes=rule.after_min)
        if now < due:
            return []
        minutes = _minutes(now - self._down_since(vs, window[0]))
        opened = self._insert(vehicle, rule, "", rule.title_fr, rule.title_en, "min", due,
                              minutes, minutes)
        return [("opened", opened)] if opened else []

    def _down_since(self, vs: VehicleState, default: datetime) -> datetime:
        if vs.connection == "offline" and vs.connection_ts is not None:
            return vs.connection_ts
        return vs.last_seen or default  # stale: silent since it was last heard

    def _no_gps(self, rule: NoGpsRule, vehicle: str, vs: VehicleState,
                now: datetime) -> list[tuple[Event, Alert]]:
        alert = self._open(vehicle, rule.id)
        after = timedelta(minutes=rule.after_min)
        fix = vs.position.ts if vs.position is not None else None
        if alert is not None:
            if fix is not None and now - fix < after:  # fixes are back
                return [("closed", self._close(alert.id, now, _minutes(now - fix)))]
            return []
        if vs.presence(now, self.stale_after) != "online" or not self._moving(rule, vs, now):
            self._moving_since.pop(vehicle, None)
            return []
        if fix is None:  # never had a fix today: count from when it was first seen moving
            fix = self._moving_since.setdefault(vehicle, now)
        if now - fix < after:
            return []
        minutes = _minutes(now - fix)
        opened = self._insert(vehicle, rule, "", rule.title_fr, rule.title_en, "min",
                              fix + after, minutes, minutes)
        return [("opened", opened)] if opened else []

    def _moving(self, rule: NoGpsRule, vs: VehicleState, now: datetime) -> bool:
        fix_ts = vs.position.ts if vs.position is not None else None
        recent = now - timedelta(minutes=rule.after_min)
        engine = {q: s for (sensor, q), s in vs.readings.items()
                  if sensor == rule.engine_sensor and s[1] is not None and s[0] >= recent
                  and (fix_ts is None or s[0] > fix_ts)}
        # Engine readings newer than the last fix know better than that fix's speed.
        if "speed_kmh" in engine:
            return (engine["speed_kmh"][1] or 0.0) > rule.moving_speed_kmh
        if "rpm" in engine:
            return (engine["rpm"][1] or 0.0) > 0
        speed = vs.position.speed if vs.position is not None else None
        return speed is not None and speed > rule.moving_speed_ms

    def _service_window(self, vehicle: str, now: datetime,
                        margin: timedelta) -> tuple[datetime, datetime] | None:
        """Today's service hours, widened by `margin`: None on a day without visits."""
        day = now.astimezone(self.fleet.zone).date()
        if (vehicle, day) not in self._plans:
            if len(self._plans) > 1000:
                self._plans.clear()
            visits = day_plan(self.fleet, vehicle, day).visits
            self._plans[(vehicle, day)] = (
                (visits[0].arrive, visits[-1].depart) if visits else None)
        window = self._plans[(vehicle, day)]
        return None if window is None else (window[0] - margin, window[1] + margin)

    # -- storage ---------------------------------------------------------------------------

    def _db(self) -> Any:
        # The store's one connection is shared with the ingest writer: take its lock.
        return self.store._lock

    def _collect_new_samples(self) -> None:
        """Note, per rule, the oldest sample stored since the last look (by rowid, the
        order of storing), so a backlog older than live data is replayed, not missed."""
        with self._db():
            if self._cursor is None:
                row = self.store.db.execute(
                    "SELECT value FROM alert_cursor WHERE name = 'samples'").fetchone()
                self._cursor = int(row[0]) if row else None
            if self._cursor is None:
                # First run on this database: judge from the last day of history only.
                top = self.store.db.execute("SELECT MAX(rowid) FROM samples").fetchone()[0]
                self._cursor = int(top or 0)
                rows = self.store.db.execute(
                    "SELECT vehicle, sensor, quantity, MIN(ts) FROM samples WHERE ts >= ? "
                    "GROUP BY vehicle, sensor, quantity",
                    [_iso(self.clock.now() - timedelta(days=1))]).fetchall()
                self._saved_cursor_at = None
            else:
                rows = self.store.db.execute(
                    "SELECT vehicle, sensor, quantity, MIN(ts), MAX(rowid) FROM samples "
                    "WHERE rowid > ? GROUP BY vehicle, sensor, quantity",
                    [self._cursor]).fetchall()
                self._cursor = max([self._cursor, *(int(r[4]) for r in rows)])
            for vehicle, sensor, quantity, oldest, *_ in rows:
                ts = datetime.fromisoformat(oldest)
                for rule in self.rules:
                    if isinstance(rule, ThresholdRule) and (rule.sensor, rule.quantity) == (
                            sensor, quantity):
                        key = (vehicle, rule.id)
                        self._dirty[key] = min(self._dirty.get(key, ts), ts)
            # Saved now and then, not at every batch: a commit is a disk flush, and a
            # cursor a little behind after a crash only means judging some samples again,
            # which changes nothing (recorded alerts are followed, not repeated).
            tick = time.monotonic()
            if self._saved_cursor_at is None or tick - self._saved_cursor_at > CURSOR_SAVE_S:
                self._save_cursor()
                self._saved_cursor_at = tick

    def _save_cursor(self) -> None:
        with self._db():
            self.store.db.execute(
                "INSERT OR REPLACE INTO alert_cursor (name, value) VALUES ('samples', ?)",
                [self._cursor])
            self.store.db.conn.commit()

    def _select(self, where: str, args: Sequence[Any]) -> list[Alert]:
        with self._db():
            rows = self.store.db.execute(
                "SELECT id, vehicle, rule, title_fr, title_en, severity, opened_at, "
                "value_at_open, acknowledged_by, acknowledged_at, closed_at, last_value, key, "
                f"unit FROM alerts WHERE {where}", list(args)).fetchall()
        return [_alert(r) for r in rows]

    def _open(self, vehicle: str, rule: str, key: str = "") -> Alert | None:
        found = self._select("vehicle = ? AND rule = ? AND key = ? AND closed_at IS NULL",
                             [vehicle, rule, key])
        return found[0] if found else None

    def _open_at(self, vehicle: str, rule: str, at: datetime) -> Alert | None:
        """The alert that was going at `at`, if any: the replay starts in that episode."""
        found = self._select("vehicle = ? AND rule = ? AND key = '' AND opened_at <= ? AND "
                             "(closed_at IS NULL OR closed_at > ?) ORDER BY opened_at DESC",
                             [vehicle, rule, _iso(at), _iso(at)])
        return found[0] if found else None

    def _insert(self, vehicle: str, rule: _Rule, key: str, title_fr: str, title_en: str,
                unit: str, opened_at: datetime, value: float | None,
                last: float | None, closed_at: datetime | None = None) -> Alert | None:
        with self._db():
            try:
                cur = self.store.db.execute(
                    "INSERT INTO alerts (vehicle, rule, key, title_fr, title_en, severity, "
                    "unit, opened_at, value_at_open, last_value, closed_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [vehicle, rule.id, key, title_fr, title_en, rule.severity, unit,
                     _iso(opened_at), value, last,
                     None if closed_at is None else _iso(closed_at)])
                self.store.db.conn.commit()
            except sqlite3.IntegrityError:  # already open: the same episode, not a new one
                self.store.db.conn.rollback()
                return None
        log.warning("alert opened: %s %s (%s)", vehicle, title_en, value)
        return self.get(int(cur.lastrowid or 0))

    def _close(self, alert_id: int, at: datetime, last: float | None) -> Alert:
        with self._db():
            self.store.db.execute(
                "UPDATE alerts SET closed_at = ?, last_value = COALESCE(?, last_value) "
                "WHERE id = ? AND closed_at IS NULL", [_iso(at), last, alert_id])
            self.store.db.conn.commit()
        alert = self.get(alert_id)
        log.info("alert closed: %s %s", alert.vehicle, alert.title_en)
        return alert

    def _set_last(self, alert_id: int, last: float | None) -> None:
        with self._db():
            self.store.db.execute("UPDATE alerts SET last_value = ? WHERE id = ?",
                                  [last, alert_id])
            self.store.db.conn.commit()

    def _update_last(self, alert: Alert, last: float) -> list[tuple[Event, Alert]]:
        if alert.last_value != last:
            self._set_last(alert.id, last)
        return []

    def _notify(self, event: Event, alert: Alert) -> None:
        if self.notifier is None:
            return
        try:
            self.notifier.notify(event, alert)
        except Exception:  # a notifier must not break the engine, even a buggy one
            log.exception("notifier failed for alert %d", alert.id)


def _replay(rule: ThresholdRule, samples: list[tuple[datetime, float]], end: datetime,
            known: dict[int, Alert] | list[Alert]) -> tuple[list[_Episode], datetime]:
    """Episodes in a time-ordered series. Sample i stands for the value from its time to
    the next sample's, or `end` for the last one, and at most `hold_s`; a gap longer than
    that breaks a run, since nothing is known inside it. Where a `known` (recorded) alert
    was going, the replay is in that episode: recorded history is not rewritten.

    Also returns where the next replay may start: the start of the run in progress, else
    the last sample (before it, nothing can change what is to come)."""
    hold = timedelta(seconds=rule.hold_s)
    need_open = timedelta(seconds=rule.for_s)
    need_clear = timedelta(seconds=rule.clear_for_s)
    recorded = sorted(known.values() if isinstance(known, dict) else known,
                      key=lambda a: a.opened_at)
    episodes: list[_Episode] = []
    bound: dict[int, _Episode] = {}

    def going(t: datetime) -> _Episode | None:
        """The recorded alert going at `t` (ended by its record, or by the replay)."""
        for a in recorded:
            ep = bound.get(a.id)
            stop = a.closed_at or (ep.closed_at if ep is not None else None)
            if a.opened_at <= t and (stop is None or t < stop):
                if ep is None:
                    ep = bound[a.id] = _Episode(a.opened_at, a.value_at_open or 0.0,
                                                last_value=a.last_value, alert_id=a.id,
                                                recorded_close=a.closed_at)
                    episodes.append(ep)
                return ep
        return None

    current: _Episode | None = None
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
                        current = _Episode(opened_at, value, last_value=value)
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


def _minutes(delta: timedelta) -> float:
    return round(delta.total_seconds() / 60, 1)


def _alert(row: Sequence[Any]) -> Alert:
    return Alert(
        id=int(row[0]), vehicle=row[1], rule=row[2], title_fr=row[3], title_en=row[4],
        severity=row[5], opened_at=datetime.fromisoformat(row[6]), value_at_open=row[7],
        acknowledged_by=row[8], acknowledged_at=_dt(row[9]), closed_at=_dt(row[10]),
        last_value=row[11], key=row[12], unit=row[13],
    )
