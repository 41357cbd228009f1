"""The first handler of the position pipeline: drop fixes that would mislead the ground.

Reasons, counted in `rejected`: no_fix, invalid, duplicate, future, inaccurate, jump.
A jump (a fix implying an impossible speed from the last good one) could also be the last
good one that was wrong; after a few mutually consistent "jumps" the filter re-anchors on
them rather than rejecting the truth forever.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta

from medicobus.clock import Clock
from medicobus.geo import distance_m
from onboard.config import FilterSettings
from onboard.telemetry.fix import Fix

REANCHOR_AFTER = 3


class FixFilter:
    def __init__(self, settings: FilterSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.rejected: Counter[str] = Counter()
        self.last: Fix | None = None
        self._suspects: list[Fix] = []

    def accept(self, fix: Fix) -> bool:
        reason = self._reason(fix)
        if reason is None:
            self.last = fix
            self._suspects.clear()
            return True
        self.rejected[reason] += 1
        return False

    def _reason(self, fix: Fix) -> str | None:
        if not fix.has_fix:
            return "no_fix"
        if not (-90 <= fix.lat <= 90 and -180 <= fix.lon <= 180) or (fix.lat, fix.lon) == (0, 0):
            return "invalid"
        if any(v is not None and not math.isfinite(v) for v in (fix.speed, fix.heading, fix.acc)):
            return "invalid"
        if fix.ts > self.clock.now() + timedelta(seconds=self.settings.future_tolerance_s):
            return "future"
        if self.last is not None and fix.ts <= self.last.ts:
            return "duplicate"
        if fix.acc is not None and fix.acc > self.settings.max_accuracy_m:
            return "inaccurate"
        if self.last is not None and self._too_fast(self.last, fix):
            if self._reanchor(fix):
                return None
            return "jump"
        return None

    def _too_fast(self, a: Fix, b: Fix) -> bool:
        seconds = (b.ts - a.ts).total_seconds()
        # Allow the receiver's own error on both ends before calling it a jump.
        slack = (a.acc or 10.0) + (b.acc or 10.0)
        metres = max(0.0, distance_m(a.lat, a.lon, b.lat, b.lon) - slack)
        return metres / seconds * 3.6 > self.settings.max_speed_kmh

    def _reanchor(self, fix: Fix) -> bool:
        if self._suspects and self._too_fast(self._suspects[-1], fix):
            self._suspects.clear()
        self._suspects.append(fix)
        return len(self._suspects) >= REANCHOR_AFTER
