"""The first handler of the position pipeline: drop fixes that would mislead the ground.

A fix is judged by what the receiver says and by the sequence of fixes before it, never by
the Pi's clock: a Pi without a real-time clock that boots offline believes it is some other
day, while the receiver's time is right (and an old recording's time is right for it).

Reasons, counted in `rejected`:

* no_fix: no position (mode 0/1, or NaN);
* simulated: the receiver says it invented the fix (demo mode, simulator);
* invalid: what the contract's Position would refuse (out of range, NaN or infinite values,
  a negative or 250-knot speed...), or the 0,0 of a receiver that has nothing yet;
* inaccurate: its error estimate exceeds `max_accuracy_m`;
* duplicate: the same GPS time as the last accepted fix, or as the jump being watched;
* out_of_order: older than the last accepted fix;
* jump: a position implying an impossible speed from the last accepted one.

A jump or a step back in time could also be the last good fix that was wrong (a start-up
fix far away, a receiver that sent one fix dated years ahead): after REANCHOR_AFTER
mutually consistent suspects the filter re-anchors on them rather than refusing the truth
forever.
"""

from __future__ import annotations

from collections import Counter

from pydantic import ValidationError

from medicobus.motion import too_fast
from onboard.config import FilterSettings
from onboard.telemetry.fix import Fix

REANCHOR_AFTER = 3


class FixFilter:
    def __init__(self, settings: FilterSettings, vehicle: str) -> None:
        self.settings = settings
        self.vehicle = vehicle  # only to build the Position the contract would check
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
        if fix.simulated:
            return "simulated"
        if (fix.lat, fix.lon) == (0, 0) or not self._in_contract(fix):
            return "invalid"
        if fix.acc is not None and fix.acc > self.settings.max_accuracy_m:
            return "inaccurate"
        last = self.last
        if last is None:
            return None
        if fix.ts == last.ts:
            return "duplicate"
        if fix.ts < last.ts:
            return self._suspect(fix, "out_of_order")
        if self._too_fast(last, fix):
            return self._suspect(fix, "jump")
        return None

    def _in_contract(self, fix: Fix) -> bool:
        try:
            fix.position(self.vehicle)
        except ValidationError:
            return False
        return True

    def _too_fast(self, a: Fix, b: Fix) -> bool:
        # The same rule as the ground's (medicobus.motion), with this bus's own limit.
        return too_fast((a.lat, a.lon, a.acc, a.ts), (b.lat, b.lon, b.acc, b.ts),
                        self.settings.max_speed_kmh)

    def _suspect(self, fix: Fix, reason: str) -> str | None:
        """Watch a fix that contradicts the last accepted one; None when it is the
        REANCHOR_AFTER-th of a consistent run, which then replaces the anchor."""
        suspects = self._suspects
        if suspects:
            previous = suspects[-1]
            if fix.ts == previous.ts:
                return "duplicate"  # the same start-up jump read again
            if fix.ts < previous.ts or self._too_fast(previous, fix):
                suspects.clear()
        suspects.append(fix)
        return None if len(suspects) >= REANCHOR_AFTER else reason
