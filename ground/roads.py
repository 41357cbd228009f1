"""The road each leg is really driven on, learned from its past drives: a simplified
polyline, and how a drive's time is spread along it.

A médicobus drives the same legs every week or fortnight. The positions it sent between
leaving one stop and reaching the next (`Store.drive_tracks`) trace the road: the
straight line between the stops knows neither the bends (the road is often a third longer)
nor the slow stretches (a village at 30 km/h, a junction), which are where the share of
the *distance* left and the share of the *time* left part ways. So for each leg:

- the road: the most recent well-traced drive (no long gap between its positions), made
  light with Douglas–Peucker (shapely's `simplify`: a few hundred points for 20 km), in a
  local metric frame (equirectangular about the leg's start: good to a metre at 50 km);
- its time profile: at every `STATION_M` along the road, the share of the drive's time
  spent reaching it, the median over the leg's recent drives (each projected onto the road;
  a drive that strays from it, a detour, is left out);
- its road factor: the way driven over the straight line (the median of its drives'; a
  leg whose traces all have a gap has a factor, not a road yet), for the distance still
  to drive off the road, and, the fleet's median, for legs never driven.

The ETA (ground/eta.py) projects the bus's position onto the road it is on: the time left
is the leg's learned time × the share of the profile still ahead. shapely (GEOS) does the
geometry (simplify, project, interpolate) rather than a hand-written version of it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import shapely

from medicobus.geo import EARTH_RADIUS_M, distance_m

SIMPLIFY_M = 10.0  # a simplified road strays this far from the traced one at most
STATION_M = 50.0  # the time profile's step along the road
OFF_ROAD_M = 250.0  # farther than this from the road: not on it (a detour, a wrong fix)
MAX_GAP_M = 600.0  # a trace with a longer gap between positions cuts corners: not the road
MAX_STRAYED = 0.1  # a drive with more of its positions off the road is a detour
DRIVES_KEPT = 8  # the recent drives a profile is the median of (roadworks come and go)
MIN_POINTS = 5


@dataclass(frozen=True)
class Track:
    """One past drive of a leg: the positions sent from leaving `origin` to reaching
    `dest` as (time, lat, lon), in their order."""

    origin: str
    dest: str
    left: datetime
    arrived: datetime
    points: Sequence[tuple[datetime, float, float]]

    @property
    def seconds(self) -> float:
        return (self.arrived - self.left).total_seconds()


@dataclass(frozen=True)
class Frame:
    """Metres east and north of a point: flat enough for one leg."""

    lat: float
    lon: float

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        return (math.radians(lon - self.lon) * EARTH_RADIUS_M * math.cos(math.radians(self.lat)),
                math.radians(lat - self.lat) * EARTH_RADIUS_M)


@dataclass(frozen=True)
class Located:
    """Where a position is on a road: metres along it, and how far off it."""

    along_m: float
    off_m: float


@dataclass(frozen=True, eq=False)
class Road:
    """A leg's road and its time profile: at `stations` metres along, the share of the
    drive's time spent (`elapsed`, 0 at the start, 1 at the end, never decreasing)."""

    origin: str
    dest: str
    frame: Frame
    line: shapely.LineString
    stations: np.ndarray
    elapsed: np.ndarray
    drives: int
    straight_m: float

    @property
    def length_m(self) -> float:
        return float(self.line.length)

    def locate(self, lat: float, lon: float) -> Located | None:
        """The position projected onto the road; None if it is not on it."""
        point = shapely.Point(self.frame.xy(lat, lon))
        off = float(self.line.distance(point))
        if off > OFF_ROAD_M:
            return None
        return Located(float(self.line.project(point)), off)

    def share_left(self, along_m: float) -> float:
        """The share of the drive's time still ahead from `along_m` metres along."""
        return 1.0 - float(np.interp(along_m, self.stations, self.elapsed))


@dataclass
class Learned:
    """What the drives taught, by leg (origin, destination): its road, its road factor."""

    roads: dict[tuple[str, str], Road] = field(default_factory=dict)
    factors: dict[tuple[str, str], float] = field(default_factory=dict)


def learn(tracks: Iterable[Track], stops: dict[str, tuple[float, float]]) -> Learned:
    """The road factor of every leg driven and the road of those with a well-traced drive,
    from their tracks (any order); `stops` gives each stop's coordinates."""
    by_leg: dict[tuple[str, str], list[Track]] = {}
    for t in tracks:
        if t.origin in stops and t.dest in stops and len(t.points) >= MIN_POINTS:
            by_leg.setdefault((t.origin, t.dest), []).append(t)
    out = Learned()
    for (origin, dest), seen in by_leg.items():
        recent = sorted(seen, key=lambda t: t.left)[-DRIVES_KEPT:]
        straight = distance_m(*stops[origin], *stops[dest])
        factors = [f for t in recent if (f := _factor(t, straight)) is not None]
        if factors:
            out.factors[origin, dest] = statistics.median(factors)
        road = learn_road(recent, straight)
        if road is not None:
            out.roads[origin, dest] = road
    return out


def learn_road(tracks: Sequence[Track], straight_m: float) -> Road | None:
    """A leg's road from its recent drives (oldest first): traced by the latest one without
    a long gap, timed by the median of the drives that kept to it."""
    traced = [t for t in tracks if _gapless(t)]
    if not traced:
        return None
    reference = traced[-1]
    frame = Frame(reference.points[0][1], reference.points[0][2])
    line = shapely.LineString([frame.xy(lat, lon) for _, lat, lon in reference.points])
    line = line.simplify(SIMPLIFY_M, preserve_topology=False)
    if line.length <= 0:
        return None
    stations = np.append(np.arange(0.0, line.length, STATION_M), line.length)
    profiles = [p for t in tracks if (p := _profile(t, line, frame, stations)) is not None]
    if not profiles:
        return None
    elapsed = np.maximum.accumulate(np.median(np.vstack(profiles), axis=0))
    return Road(reference.origin, reference.dest, frame, line, stations, elapsed,
                len(profiles), straight_m)


def _factor(t: Track, straight_m: float) -> float | None:
    """The way driven over the straight line: a gap's chord cuts a corner, which a short
    GPS outage makes little of (what the bus sends waits in its outbox: the link's
    outages leave no gap)."""
    way = sum(distance_m(a[1], a[2], b[1], b[2])
              for a, b in zip(t.points, t.points[1:], strict=False))
    return max(1.0, way / straight_m) if straight_m > 0 else None


def _gapless(t: Track) -> bool:
    return all(distance_m(a[1], a[2], b[1], b[2]) <= MAX_GAP_M
               for a, b in zip(t.points, t.points[1:], strict=False))


def _profile(t: Track, line: shapely.LineString, frame: Frame, stations: np.ndarray
             ) -> np.ndarray | None:
    """The share of this drive's time spent reaching each station of `line`, or None if
    the drive strayed from it."""
    if t.seconds <= 0:
        return None
    points = shapely.points([frame.xy(lat, lon) for _, lat, lon in t.points])
    off = shapely.distance(line, points)
    on = off <= OFF_ROAD_M
    if on.mean() < 1 - MAX_STRAYED:
        return None
    along = np.maximum.accumulate(shapely.line_locate_point(line, points[on]))
    share = np.array([(ts - t.left).total_seconds() / t.seconds
                      for (ts, _, _), keep in zip(t.points, on, strict=True) if keep])
    # The first time each distance was reached: a bus held at a junction reaches the
    # next metre when it moves on, which is when the road past it begins.
    first = np.concatenate(([True], np.diff(along) > 0))
    along = np.concatenate(([0.0], along[first], [line.length]))
    share = np.clip(np.concatenate(([0.0], share[first], [1.0])), 0.0, 1.0)
    return np.maximum.accumulate(np.interp(stations, along, share))
