"""Recorded days re-run through the ETA model and the baselines, every minute, as the
ground would have published them: the benchmark (bench/eta_accuracy.py) on simulated
days, `medicobus ground eta-replay` on the ground's own store.

What the ground knew at each minute is what it had received by then (each message at the
time it reached the ground); the model learns only from the days before the first one
replayed, as the service does at start. The real arrivals are the ones the buses reported,
else the ones inferred from the whole day's positions (ground/progress.py), so a bus parked
off its stop is scored too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from ground import accuracy, roads
from ground.eta import TravelModel, forecast_day
from ground.fleet import Fleet, with_planned
from ground.progress import infer
from ground.state import LiveState, VehicleState
from ground.store import Leg, Message, Store
from medicobus import contract

EVERY = timedelta(minutes=1)  # how often the published ETAs are scored
BEFORE = timedelta(minutes=90)  # scored from this long before the first planned arrival
LEARN_WEEKS = 8  # as the service
SEED_DAYS = 28  # the timetable's coming weeks, whose speeds seed the legs not driven yet
KINDS = ("position", "event", "queue")  # what the forecast reads

Predictor = Callable[[Sequence[contract.PlannedVisit], VehicleState, datetime],
                     list[accuracy.Prediction]]
Received = tuple[Message, datetime]  # a message and when it reached the ground


def learn(travel: TravelModel, store: Store, fleet: Fleet, since: datetime,
          until: datetime | None = None) -> None:
    """What the store's past days teach the model: the legs driven and the roads they were
    driven on, how early each stop is reached and how late it is left; and, for the legs
    not driven yet, the timetable's own speeds (its coming weeks)."""
    legs = list(store.legs(since, until))
    travel.learn((leg.origin, leg.dest, leg.seconds) for leg in legs)
    travel.learn_roads(roads.learn(tracks(store, legs),
                                   {s.id: (s.lat, s.lon) for s in fleet.stops}))
    travel.learn_arrivals(with_planned(fleet, store.crossings("arrival", since, until)))
    travel.learn_departures(with_planned(fleet, store.crossings("departure", since, until)))
    first = (until or since).astimezone(fleet.zone).date()
    travel.seed(fleet.day_visits(v.id, first + timedelta(days=d))
                for v in fleet.vehicles for d in range(SEED_DAYS))


def tracks(store: Store, legs: Sequence[Leg]) -> Iterator[roads.Track]:
    """Each leg with the positions its bus sent on the way, from where it left to where
    it arrived."""
    for leg in legs:
        points = [(datetime.fromisoformat(ts), lat, lon) for ts, lat, lon, _, _ in
                  store.positions_between(leg.vehicle, leg.left, leg.arrived)]
        yield roads.Track(leg.origin, leg.dest, leg.left, leg.arrived,
                          [(leg.left, *leg.start), *points, (leg.arrived, *leg.end)])


def model(travel: TravelModel) -> Predictor:
    """The ETA model as the board publishes it."""
    def predict(visits: Sequence[contract.PlannedVisit], state: VehicleState,
                now: datetime) -> list[accuracy.Prediction]:
        return accuracy.published(forecast_day(visits, state, now, travel), now,
                                  state.vehicle)
    return predict


def predictors(travel: TravelModel) -> dict[str, Predictor]:
    return {"model": model(travel), "schedule + deviation": accuracy.schedule_deviation,
            "schedule only": accuracy.schedule_only}


def replay(visits: Sequence[contract.PlannedVisit], received: Sequence[Received],
           chosen: dict[str, Predictor], until: datetime) -> dict[str, list[accuracy.Prediction]]:
    """Every minute from `BEFORE` the first planned arrival to `until`, what each predictor
    publishes from the live state of what had reached the ground by then (`received`, in
    the order it was received)."""
    made: dict[str, list[accuracy.Prediction]] = {name: [] for name in chosen}
    if not visits:
        return made
    state = LiveState()
    now, i = visits[0].arrive - BEFORE, 0
    while now <= until:
        while i < len(received) and received[i][1] <= now:
            state.apply(received[i][0], received[i][1])  # type: ignore[arg-type]
            i += 1
        for name, predict in chosen.items():
            made[name] += predict(visits, state.get(received[0][0].vehicle)
                                  if received else VehicleState(""), now)
        now += EVERY
    return made


def actual_arrivals(visits: Sequence[contract.PlannedVisit], received: Sequence[Received]
                    ) -> dict[str, datetime]:
    """The day's real arrivals: those reported, else those the day's positions show
    (inferred as the day went, in the order things were received)."""
    if not received:
        return {}
    state = LiveState()
    vehicle = state.get(received[0][0].vehicle)
    for message, at in received:
        state.apply(message, at)  # type: ignore[arg-type]
        infer(visits, vehicle, at)
    shown = infer(visits, vehicle, received[-1][1] + timedelta(hours=1)).arrivals
    return {v.visit: t for v in visits
            if (t := vehicle.arrivals.get(v.visit) or shown.get(v.visit)) is not None}


@dataclass
class Replayed:
    """The scored predictions of each predictor, and what was replayed."""

    scored: dict[str, list[accuracy.Scored]]
    days: int
    visits: int
    arrived: int


def eta_replay(store: Store, fleet: Fleet, first: date, last: date) -> Replayed:
    """The recorded days from `first` to `last` of every vehicle, through the current model
    (learned from the weeks before `first`) and both baselines."""
    zone = fleet.zone
    start = datetime.combine(first, time(0), zone)
    travel = TravelModel()
    learn(travel, store, fleet, start - timedelta(weeks=LEARN_WEEKS), start)
    chosen = predictors(travel)
    out = Replayed({name: [] for name in chosen}, 0, 0, 0)
    day = first
    while day <= last:
        midnight = datetime.combine(day, time(0), zone)
        night = datetime.combine(day + timedelta(days=1), time(0), zone)
        received = sorted(store.history(midnight, night, KINDS), key=lambda r: r[1])
        out.days += 1
        for vehicle in fleet.vehicles:
            visits = fleet.day_visits(vehicle.id, day)
            mine = [r for r in received if r[0].vehicle == vehicle.id]
            if not visits or not mine:
                continue
            actual = actual_arrivals(visits, mine)
            out.visits += len(visits)
            out.arrived += len(actual)
            until = max([*actual.values(), visits[-1].depart])
            for name, made in replay(visits, mine, chosen, until).items():
                out.scored[name] += accuracy.score(made, actual)
        day += timedelta(days=1)
    return out
