"""How good the published ETAs were: each prediction scored against the real arrival.

One scorer for the benchmark (bench/eta_accuracy.py), the replay of the ground's own days
and the dashboard, in the manner of TransitClock's prediction accuracy record:

- a prediction is what was published at a moment (`made_at`) for a visit: its arrival;
- its *horizon* is the time from then to the bus's real arrival (not to the predicted
  one, which a model could stretch to put its errors in easier buckets);
- its *error* is the real arrival minus the predicted one (positive: the bus came later
  than announced);
- by horizon bucket (0–5, 5–10, 10–20, 20–40, 40+ min): the mean absolute error, its 90th
  percentile, the mean error (bias), and the share inside the arrival windows of
  TransitApp's ETA accuracy benchmark (0–3 min ahead: the bus from 30 s earlier to 90 s
  later than announced; 3–6: −1/+2.5 min; 6–10: −1/+3.5 min; 10–15: −1.5/+4.5 min; no
  window is defined beyond 15 min, so the share is of the predictions up to 15 min ahead).

Also the two baselines every model is judged against: the timetable alone, and the
timetable plus the current deviation (OneBusAway's method: the delay of the bus's latest
arrival or departure carried to every stop still to come).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ground.eta import Forecast
from ground.state import VehicleState
from ground.views import VisitStatus
from medicobus import contract

# (from, to) minutes ahead; None: no upper bound
BUCKETS: tuple[tuple[int, int | None], ...] = ((0, 5), (5, 10), (10, 20), (20, 40), (40, None))
# TransitApp's windows: up to this many minutes ahead, the real arrival may be this many
# seconds earlier or later than announced.
WINDOWS: tuple[tuple[float, float, float], ...] = (
    (3, 30, 90), (6, 60, 150), (10, 60, 210), (15, 90, 270))


@dataclass(frozen=True)
class Prediction:
    made_at: datetime
    visit: str
    arrive: datetime  # the predicted arrival
    vehicle: str = ""
    stop: str = ""


@dataclass(frozen=True)
class Scored:
    prediction: Prediction
    actual: datetime  # the real arrival

    @property
    def horizon_min(self) -> float:
        return (self.actual - self.prediction.made_at).total_seconds() / 60

    @property
    def error_s(self) -> float:
        """The real arrival minus the announced one: positive when the bus came later."""
        return (self.actual - self.prediction.arrive).total_seconds()

    @property
    def in_window(self) -> bool | None:
        """Inside TransitApp's window for its horizon; None beyond 15 min (no window)."""
        for up_to, early, late in WINDOWS:
            if self.horizon_min <= up_to:
                return -early <= self.error_s <= late
        return None


@dataclass(frozen=True)
class Row:
    """One horizon bucket's figures (minutes), or None where it has no prediction."""

    bucket: str
    n: int
    mae_min: float | None
    p90_min: float | None
    bias_min: float | None
    in_window: float | None  # share, 0..1, of those with a window


def score(predictions: Iterable[Prediction], actual: dict[str, datetime]) -> list[Scored]:
    """The predictions made before their visit's real arrival (`actual`, by visit id); a
    visit that never happened (skipped, cancelled) has nothing to score."""
    return [Scored(p, actual[p.visit]) for p in predictions
            if p.visit in actual and p.made_at < actual[p.visit]]


def bucket_label(low: int, high: int | None) -> str:
    return f"{low}–{high} min" if high is not None else f"{low}+ min"


def bucket_of(horizon_min: float) -> str:
    for low, high in BUCKETS:
        if high is None or horizon_min < high:
            return bucket_label(low, high)
    raise AssertionError("the last bucket has no upper bound")


def table(scored: Sequence[Scored]) -> list[Row]:
    """One row per horizon bucket, in order, and one for all horizons ("all")."""
    groups: dict[str, list[Scored]] = {bucket_label(*b): [] for b in BUCKETS}
    for s in scored:
        groups[bucket_of(s.horizon_min)].append(s)
    return [_row(label, group) for label, group in [*groups.items(), ("all", list(scored))]]


def tables_by(scored: Sequence[Scored], key: Callable[[Scored], Hashable]
              ) -> dict[Hashable, list[Row]]:
    """The table for each group (per vehicle, per stop, per week...)."""
    groups: dict[Hashable, list[Scored]] = {}
    for s in scored:
        groups.setdefault(key(s), []).append(s)
    return {k: table(v) for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))}


def week_of(s: Scored) -> str:
    year, week, _ = s.actual.isocalendar()
    return f"{year}-W{week:02d}"


def _row(label: str, group: Sequence[Scored]) -> Row:
    if not group:
        return Row(label, 0, None, None, None, None)
    errors = [s.error_s / 60 for s in group]
    absolute = sorted(abs(e) for e in errors)
    windowed = [w for w in (s.in_window for s in group) if w is not None]
    return Row(label, len(group), sum(absolute) / len(absolute), percentile(absolute, 90),
               sum(errors) / len(errors),
               sum(windowed) / len(windowed) if windowed else None)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest rank (the value that q % of them do not exceed), of sorted values."""
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def markdown(tables: dict[str, list[Row]]) -> list[str]:
    """Tables side by side as one Markdown table: a line per (predictor, bucket)."""
    lines = ["| predictor | horizon | n | MAE | p90 | bias | in window |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, rows in tables.items():
        for r in rows:
            lines.append(f"| {name} | {r.bucket} | {r.n} | {_min(r.mae_min)} | "
                         f"{_min(r.p90_min)} | {_min(r.bias_min, signed=True)} | "
                         f"{'—' if r.in_window is None else f'{r.in_window:.0%}'} |")
    return lines


def _min(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.1f} min" if signed else f"{value:.1f} min"


# -- what is published, and the baselines ---------------------------------------------------


def published(forecasts: Sequence[Forecast], now: datetime, vehicle: str = ""
              ) -> list[Prediction]:
    """The arrivals a forecast announces: those of the visits not reached yet (what a
    commune page shows as its ETA)."""
    return [Prediction(now, f.visit.visit, f.arrive, vehicle, f.visit.stop) for f in forecasts
            if f.arrived_at is None
            and f.status not in (VisitStatus.DEPARTED, VisitStatus.UNCONFIRMED)]


Baseline = Callable[[Sequence[contract.PlannedVisit], VehicleState, datetime],
                    list[Prediction]]


def schedule_only(visits: Sequence[contract.PlannedVisit], state: VehicleState,
                  now: datetime) -> list[Prediction]:
    """The timetable, for the visits not reached yet (but never in the past)."""
    return _shifted(visits, state, now, timedelta(0))


def schedule_deviation(visits: Sequence[contract.PlannedVisit], state: VehicleState,
                       now: datetime) -> list[Prediction]:
    """The timetable plus the delay (or advance) of the bus's latest arrival or departure,
    for the visits after it (OneBusAway's schedule deviation)."""
    latest: tuple[datetime, timedelta] | None = None
    for v in visits:
        for seen, planned in ((state.arrivals.get(v.visit), v.arrive),
                              (state.departures.get(v.visit), v.depart)):
            if seen is not None and (latest is None or seen >= latest[0]):
                latest = (seen, seen - planned)
    return _shifted(visits, state, now, latest[1] if latest else timedelta(0))


def _shifted(visits: Sequence[contract.PlannedVisit], state: VehicleState, now: datetime,
             deviation: timedelta) -> list[Prediction]:
    reached = max((i for i, v in enumerate(visits)
                   if v.visit in state.arrivals or v.visit in state.departures), default=-1)
    return [Prediction(now, v.visit, max(now, v.arrive + deviation), state.vehicle, v.stop)
            for v in visits[reached + 1:]]
