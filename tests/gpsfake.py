"""The tests feed gpsd the same way as the demo: see onboard/telemetry/replay.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from onboard.telemetry.replay import GpsFake

__all__ = ["GpsFake", "binary_gpsfake"]


def binary_gpsfake(workdir: Path, data: bytes, **options: Any) -> GpsFake:
    """A GpsFake replaying a binary log (u-blox UBX, SiRF...), which gpsfake takes as it
    takes NMEA: GpsFake itself writes its log as text."""
    fake = GpsFake(workdir, nmea="", **options)
    fake.log_path.write_bytes(data)
    return fake
