"""The tests feed gpsd the same way as the demo: see onboard/telemetry/replay.py."""

from onboard.telemetry.replay import GpsFake

__all__ = ["GpsFake"]
