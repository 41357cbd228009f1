"""When a good fix is worth sending: on time and on displacement or heading change.

A parked bus sends a heartbeat every few minutes; a moving one sends when it has gone far
enough, turned enough, or at least every `moving_interval_s`; starting and stopping are
always reported so the ground sees the change at once.
"""

from __future__ import annotations

from medicobus.geo import distance_m, heading_change_deg
from medicobus.motion import moving
from onboard.config import ReportSettings
from onboard.telemetry.fix import Fix


class ReportPolicy:
    def __init__(self, settings: ReportSettings) -> None:
        self.settings = settings
        self.last: Fix | None = None

    def due(self, fix: Fix) -> bool:
        """Whether to report `fix`; remembers it as the last report when it is."""
        if self._due(fix):
            self.last = fix
            return True
        return False

    def _due(self, fix: Fix) -> bool:
        s, last = self.settings, self.last
        if last is None:
            return True
        elapsed = (fix.ts - last.ts).total_seconds()
        if elapsed < s.min_interval_s:
            return False
        now_moving = moving(fix.speed, s.moving_speed_kmh)
        if elapsed >= s.heartbeat_s or now_moving != moving(last.speed, s.moving_speed_kmh):
            return True
        if distance_m(last.lat, last.lon, fix.lat, fix.lon) >= s.distance_m:
            return True
        if not now_moving:
            return False
        if elapsed >= s.moving_interval_s:
            return True
        return (
            fix.heading is not None
            and last.heading is not None
            and heading_change_deg(fix.heading, last.heading) >= s.heading_deg
        )
