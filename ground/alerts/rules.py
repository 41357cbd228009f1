"""The alert rules, as configured, each judging one vehicle at a time.

A rule has a condition, a duration and a clear condition (as ThingsBoard's alarm rules).
Durations and hysteresis are what keep flapping input (a fridge hovering at 8.0 °C) from
opening and closing alerts repeatedly. A rule is given a `Case` (the vehicle's live state,
the rule's open alerts on it, what the rule keeps between judgments) and answers with
verdicts: open an alert, close one, note an open one's latest value. The engine records
them; the rules themselves never write.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable, Sequence, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ground.alerts.episodes import Episode, replay
from ground.alerts.storage import Alert, AlertStorage, Done
from ground.state import VehicleState
from medicobus.motion import KMH_PER_MS, MOVING_SPEED_KMH, moving

Severity = Literal["info", "warning", "critical"]
RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
Seconds = Annotated[float, Field(ge=0, le=7 * 86400)]


# -- what a rule is given, and what it answers ---------------------------------------------

CodeReport = tuple[datetime, frozenset[str]]  # a sensor's codes as reported at that time


@dataclass
class Case:
    """One vehicle, as one rule judges it now."""

    vehicle: str
    state: VehicleState
    now: datetime
    stale_after: timedelta
    open: dict[str, Alert]  # the rule's open alerts on the vehicle, by key
    memory: dict[str, datetime]  # what the rule keeps of the vehicle between judgments
    reports: dict[str, CodeReport]  # the code reports it judged last, by sensor
    stored_since: datetime | None  # the oldest of the rule's samples stored since then
    records: AlertStorage  # the stored series and the alerts recorded
    service_hours: Callable[[], tuple[datetime, datetime] | None]  # today's; None: no visit

    def presence(self) -> str:
        return self.state.presence(self.now, self.stale_after)


@dataclass(frozen=True)
class Open:
    """A new alert; from a drained backlog its episode may be over already."""

    key: str
    title_fr: str
    title_en: str
    unit: str
    opened_at: datetime
    value: float | None
    last: float | None
    closed_at: datetime | None = None


@dataclass(frozen=True)
class Close:
    alert_id: int
    at: datetime
    last: float | None  # None: the last value recorded stays


@dataclass(frozen=True)
class Note:
    """An open alert's latest value (the temperature now, the minutes offline so far)."""

    alert_id: int
    last: float | None


Verdict = Open | Close | Note


# -- the rules -----------------------------------------------------------------------------


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RuleId
    title_fr: Annotated[str, Field(min_length=1, max_length=120)]
    title_en: Annotated[str, Field(min_length=1, max_length=120)]
    severity: Severity = "warning"
    enabled: bool = True

    @abstractmethod
    def judge(self, case: Case) -> list[Verdict]:
        """What changes now for the vehicle of `case`."""

    def watches(self, sensor: str, quantity: str) -> bool:
        """Whether this stored series is what the rule judges (new samples wake it)."""
        return False

    def _opening(self, unit: str, opened_at: datetime, value: float | None,
                 last: float | None, closed_at: datetime | None = None) -> Open:
        return Open("", self.title_fr, self.title_en, unit, opened_at, value, last, closed_at)


class ThresholdRule(_Rule):
    """A quantity above / below / outside a band for `for_s`; clears once back beyond the
    clear level (hysteresis) for `clear_for_s`. Clear levels default to the trigger's.
    Judged on the readings' own timestamps, replaying the stored series (see episodes)."""

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

    def bounds(self) -> tuple[float, float]:
        """The range the quantity must stay in (infinite on an open side)."""
        lo = self.below if self.below is not None else -math.inf
        hi = self.above if self.above is not None else math.inf
        return self.outside or (lo, hi)

    def clear_bounds(self) -> tuple[float, float]:
        """The range the quantity must be back in, for `clear_for_s`, to close the alert."""
        if self.above is not None:
            return -math.inf, self.clear_below if self.clear_below is not None else self.above
        if self.below is not None:
            return self.clear_above if self.clear_above is not None else self.below, math.inf
        return self.clear_inside or self.bounds()

    def breach(self, v: float) -> bool:
        lo, hi = self.bounds()
        return v < lo or v > hi

    def clear(self, v: float) -> bool:
        lo, hi = self.clear_bounds()
        if self.outside is None:  # a one-sided level is crossed, not reached
            return lo < v < hi
        return lo <= v <= hi

    def watches(self, sensor: str, quantity: str) -> bool:
        return (sensor, quantity) == (self.sensor, self.quantity)

    def judge(self, case: Case) -> list[Verdict]:
        latest = case.state.readings.get((self.sensor, self.quantity))
        if case.stored_since is None:
            if latest is None:
                return []
            if latest[1] is not None and not (
                    self.clear(latest[1]) if "" in case.open else self.breach(latest[1])):
                # Nothing new stored: only time can change things, and only while the
                # latest value is on its way to opening (breaching) or closing (clearing).
                return []
        resume = case.memory.get("resume")
        if resume is not None and (case.stored_since is None or case.stored_since >= resume):
            start = resume  # in order: go on from where the last replay left off
        else:
            # Older data came in (a backlog), or nothing was judged yet since the start:
            # replay from far enough back to catch a run already going then.
            lookback = timedelta(seconds=self.for_s + self.clear_for_s + self.hold_s + 60)
            start = min(case.stored_since or case.now, case.now) - lookback
        samples = case.records.series(case.vehicle, self.sensor, self.quantity, start)
        if not samples:
            return []
        known = case.records.recorded(case.vehicle, self.id, samples[0][0])
        # While the bus is connected, the last sample stands until now (it reports on
        # change); once it is offline, nothing is known past its last sample.
        end = case.now if case.state.connection != "offline" else samples[-1][0]
        episodes, case.memory["resume"] = replay(self, samples, end, known)
        return self._verdicts(episodes, {a.id: a for a in known})

    def _verdicts(self, episodes: list[Episode], known: dict[int, Alert]) -> list[Verdict]:
        verdicts: list[Verdict] = []
        for ep in episodes:
            alert = known.get(ep.alert_id) if ep.alert_id is not None else None
            if alert is None:
                # A new episode, maybe over already: recorded (and told) all the same, as
                # the cold chain record needs it.
                verdicts.append(self._opening(self.unit, ep.opened_at, ep.value_at_open,
                                              ep.last_value, ep.closed_at))
            elif alert.is_open:
                if ep.closed_at is not None:
                    verdicts.append(Close(alert.id, ep.closed_at, ep.last_value))
                elif ep.last_value != alert.last_value:
                    verdicts.append(Note(alert.id, ep.last_value))
        return verdicts


class NewCodeRule(_Rule):
    """A code (OBD-II trouble code, battery alarm) reported that was not set before: one
    alert per code, closed when the sensor reports its codes without it.

    Bounded: past `max_codes` codes set on a vehicle at once (a faulty adapter, a bus
    sending garbage), no more alerts of their own open; one alert without a code says how
    many are set, and closes when they are back within the limit. Judged on what changed:
    the sensors whose report is newer than the one judged last, their codes against the
    ones they replace; a vehicle whose reports did not change costs one look per sensor."""

    kind: Literal["new_code"] = "new_code"
    sensors: list[str] | None = None  # None: every sensor that reports codes
    max_codes: Annotated[int, Field(ge=1, le=1000)] = 10
    many_title_fr: Annotated[str, Field(min_length=1, max_length=120)] = \
        "nombreux codes défaut"
    many_title_en: Annotated[str, Field(min_length=1, max_length=120)] = "many trouble codes"

    def judge(self, case: Case) -> list[Verdict]:
        judged = case.reports
        changed = sorted((sensor, ts, frozenset(codes))
                         for sensor, (ts, codes) in tuple(case.state.codes.items())
                         if (self.sensors is None or sensor in self.sensors)
                         and (sensor not in judged or judged[sensor][0] != ts))
        if not changed:
            return []
        verdicts: list[Verdict] = []
        unjudged: dict[str, set[str]] | None = None  # open alerts by sensor, once needed
        fresh: list[tuple[str, datetime, frozenset[str]]] = []
        for sensor, ts, codes in changed:
            if sensor in judged:
                before: Set[str] = judged[sensor][1]
            else:  # not judged since the engine started: the alerts recorded say
                if unjudged is None:
                    unjudged = {}
                    for key in case.open:
                        if key:
                            name, _, code = key.partition(":")
                            unjudged.setdefault(name, set()).add(code)
                before = unjudged.get(sensor, set())
            for code in sorted(before - codes):
                alert = case.open.get(f"{sensor}:{code}")
                # Only codes opened at or before this report can be cleared by it.
                if alert is not None and alert.opened_at <= ts:
                    verdicts.append(Close(alert.id, ts, None))
            fresh.append((sensor, ts, codes - before))
            judged[sensor] = (ts, codes)
        count = float(sum(len(codes) for _, codes in judged.values()))
        at = max(ts for _, ts, _ in changed)
        many = case.open.get("")
        if count > self.max_codes:
            if many is None:
                verdicts.append(Open("", self.many_title_fr, self.many_title_en, "codes", at,
                                     count, count))
            elif many.last_value != count:
                verdicts.append(Note(many.id, count))
            return verdicts
        if many is not None:
            verdicts.append(Close(many.id, at, count))
            # Back within the limit: the codes still set get the alerts they did not have.
            fresh = [(s, ts, codes) for s, (ts, codes) in sorted(judged.items())]
        for sensor, ts, codes in fresh:
            for code in sorted(codes):
                if f"{sensor}:{code}" not in case.open:
                    verdicts.append(Open(f"{sensor}:{code}", f"{self.title_fr} {code}",
                                         f"{self.title_en} {code}", "", ts, None, None))
        return verdicts


class OfflineRule(_Rule):
    """Offline (Last Will) or stale for more than `after_min` during the vehicle's service
    hours: from its first visit's arrival − margin to its last departure + margin today."""

    kind: Literal["offline"] = "offline"
    after_min: Annotated[float, Field(gt=0, le=1440)] = 10
    margin_min: Annotated[float, Field(ge=0, le=240)] = 30
    clear_for_s: Seconds = 60  # back online this long: a one-message blip is not a return

    def judge(self, case: Case) -> list[Verdict]:
        alert, now = case.open.get(""), case.now
        if case.presence() == "online":
            if alert is None:
                case.memory.pop("back", None)
                return []
            back = case.memory.setdefault("back", now)
            if now - back >= timedelta(seconds=self.clear_for_s):
                case.memory.pop("back", None)
                return [Close(alert.id, back, None)]
            return []
        case.memory.pop("back", None)
        hours = case.service_hours()
        if hours is None:
            return []
        margin = timedelta(minutes=self.margin_min)
        start, end = hours[0] - margin, hours[1] + margin
        if not start <= now:
            return []
        minutes = _minutes(now - _down_since(case.state, start))
        if alert is not None:
            return [Note(alert.id, minutes)] if alert.last_value != minutes else []
        due = max(_down_since(case.state, start), start) + timedelta(minutes=self.after_min)
        if now > end or now < due:
            return []
        return [self._opening("min", due, minutes, minutes)]


class NoGpsRule(_Rule):
    """No position for `after_min` while the bus is moving (medicobus.motion): engine
    readings newer than the last fix say so (their speed, or rpm > 0 without a speed), else
    the last fix's speed."""

    kind: Literal["no_gps"] = "no_gps"
    after_min: Annotated[float, Field(gt=0, le=1440)] = 5
    engine_sensor: str = "engine"
    moving_speed_kmh: float = MOVING_SPEED_KMH

    def judge(self, case: Case) -> list[Verdict]:
        alert, now, vs = case.open.get(""), case.now, case.state
        after = timedelta(minutes=self.after_min)
        fix = vs.position.ts if vs.position is not None else None
        if alert is not None:
            if fix is not None and now - fix < after:  # fixes are back
                return [Close(alert.id, now, _minutes(now - fix))]
            return []
        if case.presence() != "online" or not self._moving(vs, now):
            case.memory.pop("moving", None)
            return []
        if fix is None:  # never had a fix today: count from when it was first seen moving
            fix = case.memory.setdefault("moving", now)
        if now - fix < after:
            return []
        minutes = _minutes(now - fix)
        return [self._opening("min", fix + after, minutes, minutes)]

    def _moving(self, vs: VehicleState, now: datetime) -> bool:
        fix_ts = vs.position.ts if vs.position is not None else None
        recent = now - timedelta(minutes=self.after_min)
        engine = {q: s for (sensor, q), s in vs.readings.items()
                  if sensor == self.engine_sensor and s[1] is not None and s[0] >= recent
                  and (fix_ts is None or s[0] > fix_ts)}
        # Engine readings newer than the last fix know better than that fix's speed.
        if "speed_kmh" in engine:
            kmh = engine["speed_kmh"][1] or 0.0
            return moving(kmh / KMH_PER_MS, self.moving_speed_kmh)
        if "rpm" in engine:
            return (engine["rpm"][1] or 0.0) > 0
        return moving(vs.position.speed if vs.position is not None else None,
                      self.moving_speed_kmh)


Unit = Literal["km", "h", "j"]


class MaintenanceItem(BaseModel):
    """Something to do every `every_km` (the odometer from OBD when the engine reports
    one, else the distance driven by GPS), `every_hours` of engine (its hour counter when
    it reports one, else the time its rpm readings were above 0) or `every_days`:
    whichever comes first. Due soon within `soon` of the interval."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: RuleId
    title_fr: Annotated[str, Field(min_length=1, max_length=120)]
    title_en: Annotated[str, Field(min_length=1, max_length=120)]
    every_km: Annotated[float, Field(gt=0)] | None = None
    every_hours: Annotated[float, Field(gt=0)] | None = None
    every_days: Annotated[float, Field(gt=0)] | None = None
    soon: Annotated[float, Field(gt=0, lt=1)] = 0.1  # of the interval: 1,500 km of 15,000
    vehicles: list[str] = []  # none: every vehicle

    @model_validator(mode="after")
    def _interval(self) -> MaintenanceItem:
        if self.every_km is None and self.every_hours is None and self.every_days is None:
            raise ValueError(f"{self.id}: give every_km, every_hours or every_days")
        return self


@dataclass(frozen=True)
class Due:
    """Where a vehicle's item stands: "ok", "soon", "overdue", or "unrecorded" (never
    recorded as done: nothing to count from); what is left of each interval."""

    item: MaintenanceItem
    state: Literal["ok", "soon", "overdue", "unrecorded"]
    left: list[tuple[float, Unit]]  # negative: past due by that much
    done: Done | None


class MaintenanceRule(_Rule):
    """Maintenance reminders: an alert when an item falls due soon, another when it is
    overdue (the first closes), both closed when it is recorded as done."""

    kind: Literal["maintenance"] = "maintenance"
    items: list[MaintenanceItem] = []  # and those made in the dashboard, per vehicle
    engine_sensor: str = "engine"
    odometer: str = "odometer_km"
    engine_hours: str = "engine_hours"

    def items_of(self, vehicle: str, records: AlertStorage) -> list[MaintenanceItem]:
        """The vehicle's items: the configuration's, replaced or joined by those made in
        the dashboard for it."""
        mine = {i.id: i for i in self.items if not i.vehicles or vehicle in i.vehicles}
        for body in records.saved_items(vehicle):
            item = MaintenanceItem.model_validate_json(body)
            mine[item.id] = item
        return list(mine.values())

    def due(self, vehicle: str, records: AlertStorage, now: datetime) -> list[Due]:
        return [self._due(item, vehicle, records, now)
                for item in self.items_of(vehicle, records)]

    def counters(self, vehicle: str, records: AlertStorage) -> tuple[float | None, float | None]:
        """The odometer and the engine hours now, when the engine reports them."""
        return (records.latest(vehicle, self.engine_sensor, self.odometer),
                records.latest(vehicle, self.engine_sensor, self.engine_hours))

    def _due(self, item: MaintenanceItem, vehicle: str, records: AlertStorage,
             now: datetime) -> Due:
        done = records.last_done(vehicle, item.id)
        if done is None:
            return Due(item, "unrecorded", [], None)
        odometer, hours = self.counters(vehicle, records)
        left: list[tuple[float, float, Unit]] = []  # left, interval, unit
        if item.every_km is not None:
            km = (odometer - done.km if odometer is not None and done.km is not None
                  else records.gps_km(vehicle, done.at))
            left.append((item.every_km - km, item.every_km, "km"))
        if item.every_hours is not None:
            ran = (hours - done.hours if hours is not None and done.hours is not None
                   else records.engine_hours_since(vehicle, done.at, self.engine_sensor))
            left.append((item.every_hours - ran, item.every_hours, "h"))
        if item.every_days is not None:
            days = (now - done.at).total_seconds() / 86400
            left.append((item.every_days - days, item.every_days, "j"))
        state: Literal["ok", "soon", "overdue"] = "ok"
        if any(rest <= 0 for rest, _, _ in left):
            state = "overdue"
        elif any(rest <= interval * item.soon for rest, interval, _ in left):
            state = "soon"
        return Due(item, state, [(round(rest, 1), unit) for rest, _, unit in left], done)

    def judge(self, case: Case) -> list[Verdict]:
        verdicts: list[Verdict] = []
        for due in self.due(case.vehicle, case.records, case.now):
            want = f"{due.item.id}:{due.state}" if due.state in ("soon", "overdue") else None
            for key, alert in case.open.items():
                if key.split(":")[0] == due.item.id and key != want:
                    verdicts.append(Close(alert.id, case.now, None))
            if want is not None and want not in case.open:
                rest, unit = min(due.left, key=lambda left: left[0] / _scale(due.item, left[1]))
                fr, en = (("Entretien dépassé", "Maintenance overdue") if due.state == "overdue"
                          else ("Entretien à prévoir", "Maintenance due soon"))
                # The value: how much is left, or (overdue) how far past, as the title says.
                verdicts.append(Open(want, f"{fr} : {due.item.title_fr}",
                                     f"{en}: {due.item.title_en}", unit, case.now, abs(rest),
                                     abs(rest)))
        return verdicts


def _scale(item: MaintenanceItem, unit: Unit) -> float:
    """An interval in its unit, to say which is nearest due (2 days of 365 before 900 km
    of 15,000)."""
    return {"km": item.every_km, "h": item.every_hours, "j": item.every_days}[unit] or 1.0


def _down_since(vs: VehicleState, default: datetime) -> datetime:
    if vs.connection == "offline" and vs.connection_ts is not None:
        return vs.connection_ts
    return vs.last_seen or default  # stale: silent since it was last heard


def _minutes(delta: timedelta) -> float:
    return round(delta.total_seconds() / 60, 1)


# -- the configuration ---------------------------------------------------------------------

Rule = ThresholdRule | NewCodeRule | OfflineRule | NoGpsRule | MaintenanceRule
AlertRule = Annotated[Rule, Field(discriminator="kind")]


def _unique(rules: list[Rule]) -> list[Rule]:
    ids = [r.id for r in rules]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate alert rule id: {', '.join(dupes)}")
    return rules


AlertRules = Annotated[list[AlertRule], AfterValidator(_unique)]

DEFAULT_RULES: list[Rule] = [
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
    # No item by default: the fleet manager adds them on each vehicle's page.
    MaintenanceRule(id="maintenance", title_fr="entretien", title_en="maintenance"),
]  # fmt: skip


def threshold_rule(rules: Sequence[Rule], sensor: str, quantity: str) -> ThresholdRule:
    """The first threshold rule on a quantity (the default rules' when none is configured):
    the dashboard marks what the alerts judge, and says when they close."""
    for rule in (*rules, *DEFAULT_RULES):
        if isinstance(rule, ThresholdRule) and rule.watches(sensor, quantity):
            return rule
    raise LookupError(f"no threshold rule on {sensor} {quantity}")


def limits(rules: Sequence[Rule], sensor: str, quantity: str) -> tuple[float, float]:
    """The range a quantity must stay in, as its threshold rule says."""
    return threshold_rule(rules, sensor, quantity).bounds()
