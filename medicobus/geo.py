"""Distances and bearings on the WGS84 sphere, good to a few metres at a commune's scale."""

from __future__ import annotations

import math
from collections.abc import Sequence

EARTH_RADIUS_M = 6_371_008.8


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from point 1 to point 2, degrees clockwise from true north."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360


def heading_change_deg(a: float, b: float) -> float:
    """Smallest angle between two headings, 0..180."""
    d = abs(a - b) % 360
    return 360 - d if d > 180 else d


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point `north_m` and `east_m` metres away (flat approximation, fine under 50 km)."""
    dlat = math.degrees(north_m / EARTH_RADIUS_M)
    dlon = math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat))))
    return lat + dlat, lon + dlon


def thin_track(points: Sequence[tuple[float, float]], min_step_m: float,
               max_points: int) -> list[tuple[float, float]]:
    """A polyline of (lat, lon) made light to send and draw: a point is kept only
    `min_step_m` or more from the last kept one (a parked bus's fixes are one point), the
    first and last points always (the line ends where the bus is: the last replaces a
    kept one too close to it); of more than `max_points` left, evenly spaced ones, the
    first and the last among them."""
    if not points:
        return []
    kept = [points[0]]
    for lat, lon in points[1:-1]:
        if distance_m(*kept[-1], lat, lon) >= min_step_m:
            kept.append((lat, lon))
    if len(points) > 1:
        if len(kept) > 1 and distance_m(*kept[-1], *points[-1]) < min_step_m:
            kept.pop()
        kept.append(points[-1])
    if len(kept) > max_points >= 2:
        step = (len(kept) - 1) / (max_points - 1)
        kept = [kept[round(i * step)] for i in range(max_points)]
    return kept
