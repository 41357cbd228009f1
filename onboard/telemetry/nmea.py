"""NMEA 0183 sentences from fixes, so a simulated or recorded day can be replayed by gpsfake.

Each fix becomes one reporting cycle: RMC, GGA, GSA then GSV, all for the fix's UTC time. RMC
comes first, as most receivers send it: gpsd reports the fix as merged so far in the cycle,
so with RMC first even its first report of a cycle has the position, speed and track.
A fix without a position (mode < 2) becomes what a receiver sends while searching: RMC
status V, GGA quality 0, GSA mode 1, empty position fields and no satellites.

How gpsd 3.22 turns these into error estimates (measured against gpsfake, and checked again
by tests/test_gps_source.py):

* `eph` = 19 m x the HDOP written in GGA/GSA;
* `epx` / `epy` = 15 m x xdop / ydop, where gpsd computes xdop and ydop itself from the
  satellite geometry in GSV (azimuth, elevation of the satellites GSA says are used), not
  from the HDOP written. Without GSV there is no epx/epy at all.

So to make gpsd report `max(epx, epy)` ~= a fix's `acc`, the sky written in GSV is one
satellite at the zenith and RING_SATELLITES evenly spread in azimuth at one elevation e: the
horizontal DOPs are then xdop = ydop = sqrt(2 / n) / cos(e), and e is chosen for the wanted
accuracy. This geometry expresses accuracies from MIN_ACC_M (~6.4 m) to MAX_ACC_M (~25 m).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC

from onboard.telemetry.fix import Fix

EPH_PER_HDOP_M = 19.0  # gpsd 3.22: eph = 19 m x HDOP
EPXY_PER_DOP_M = 15.0  # gpsd 3.22: epx = 15 m x xdop, epy = 15 m x ydop
RING_SATELLITES = 11  # plus one at the zenith: the 12 a GSA sentence can list as used
RING_PRNS = (2, 5, 7, 10, 13, 15, 18, 20, 24, 27, 30)
ZENITH_PRN = 29
MIN_RING_ELEVATION, MAX_RING_ELEVATION = 5, 75  # degrees; above ~78 gpsd gives no epx
MIN_ACC_M = EPXY_PER_DOP_M * math.sqrt(2 / RING_SATELLITES) / math.cos(
    math.radians(MIN_RING_ELEVATION)
)
MAX_ACC_M = EPXY_PER_DOP_M * math.sqrt(2 / RING_SATELLITES) / math.cos(
    math.radians(MAX_RING_ELEVATION)
)
DEFAULT_ACC_M = 8.0
DEFAULT_ALTITUDE_M = 150.0
GEOID_SEPARATION_M = 46.9
KNOTS_PER_MPS = 3600 / 1852


def checksum(body: str) -> str:
    """The two-hex-digit XOR of every character between '$' and '*'."""
    value = 0
    for char in body.encode("ascii"):
        value ^= char
    return f"{value:02X}"


def sentence(body: str) -> str:
    """'GPGGA,...' -> '$GPGGA,...*hh' (no line ending)."""
    return f"${body}*{checksum(body)}"


def is_valid(line: str) -> bool:
    """True when `line` is a well-formed sentence whose checksum matches."""
    line = line.strip()
    if not line.startswith("$") or len(line) < 5 or line[-3] != "*":
        return False
    return checksum(line[1:-3]) == line[-2:].upper()


def _accuracy(fix: Fix) -> float:
    acc = fix.acc
    if acc is None or not math.isfinite(acc) or acc <= 0:
        return DEFAULT_ACC_M
    return acc


def ring_elevation_deg(acc_m: float) -> int:
    """The elevation of the ring of satellites that makes gpsd's epx = epy ~= `acc_m`."""
    xdop = acc_m / EPXY_PER_DOP_M
    cos_e = math.sqrt(2 / RING_SATELLITES) / xdop
    if cos_e >= 1:
        return MIN_RING_ELEVATION
    elevation = round(math.degrees(math.acos(cos_e)))
    return max(MIN_RING_ELEVATION, min(MAX_RING_ELEVATION, elevation))


def hdop_for_accuracy(acc_m: float) -> float:
    """The HDOP matching the GSV geometry for `acc_m`: hypot(xdop, ydop)."""
    cos_e = math.cos(math.radians(ring_elevation_deg(acc_m)))
    xdop = math.sqrt(2 / RING_SATELLITES) / cos_e
    return xdop * math.sqrt(2)


def _latitude(lat: float) -> tuple[str, str]:
    hemisphere = "N" if lat >= 0 else "S"
    degrees, minutes = divmod(abs(lat) * 60, 60)
    return f"{int(degrees):02d}{minutes:07.4f}", hemisphere


def _longitude(lon: float) -> tuple[str, str]:
    hemisphere = "E" if lon >= 0 else "W"
    degrees, minutes = divmod(abs(lon) * 60, 60)
    return f"{int(degrees):03d}{minutes:07.4f}", hemisphere


def _clock(fix: Fix) -> tuple[str, str]:
    """('hhmmss.ss', 'ddmmyy') in UTC."""
    ts = fix.ts.astimezone(UTC)
    return f"{ts:%H%M%S}.{ts.microsecond // 10_000:02d}", f"{ts:%d%m%y}"


def rmc(fix: Fix) -> str:
    hms, dmy = _clock(fix)
    if not fix.has_fix:
        return sentence(f"GPRMC,{hms},V,,,,,,,{dmy},,,N")
    lat, ns = _latitude(fix.lat)
    lon, ew = _longitude(fix.lon)
    knots = f"{max(0.0, fix.speed) * KNOTS_PER_MPS:.3f}" if fix.speed is not None else ""
    track = f"{fix.heading % 360:.1f}" if fix.heading is not None else ""
    return sentence(f"GPRMC,{hms},A,{lat},{ns},{lon},{ew},{knots},{track},{dmy},,,A")


def gga(fix: Fix, altitude_m: float = DEFAULT_ALTITUDE_M) -> str:
    hms, _ = _clock(fix)
    if not fix.has_fix:
        return sentence(f"GPGGA,{hms},,,,,0,00,99.99,,M,,M,,")
    lat, ns = _latitude(fix.lat)
    lon, ew = _longitude(fix.lon)
    hdop = hdop_for_accuracy(_accuracy(fix))
    return sentence(
        f"GPGGA,{hms},{lat},{ns},{lon},{ew},1,{RING_SATELLITES + 1:02d},{hdop:.2f},"
        f"{altitude_m:.1f},M,{GEOID_SEPARATION_M:.1f},M,,"
    )


def gsa(fix: Fix) -> str:
    if not fix.has_fix:
        return sentence("GPGSA,A,1" + "," * 12 + ",99.99,99.99,99.99")
    hdop = hdop_for_accuracy(_accuracy(fix))
    vdop = 1.5 * hdop
    pdop = math.hypot(hdop, vdop)
    used = ",".join(f"{prn:02d}" for prn in (ZENITH_PRN, *RING_PRNS))
    mode = 3 if fix.mode >= 3 else 2
    return sentence(f"GPGSA,A,{mode},{used},{pdop:.2f},{hdop:.2f},{vdop:.2f}")


def sky(fix: Fix) -> list[tuple[int, int, int]]:
    """(prn, elevation, azimuth) of the satellites in view for `fix`; none without a fix."""
    if not fix.has_fix:
        return []
    elevation = ring_elevation_deg(_accuracy(fix))
    ring = [
        (prn, elevation, round(i * 360 / RING_SATELLITES) % 360)
        for i, prn in enumerate(RING_PRNS)
    ]
    return [(ZENITH_PRN, 90, 0), *ring]


def gsv(fix: Fix, snr: int = 40) -> list[str]:
    satellites = sky(fix)
    if not satellites:
        return [sentence("GPGSV,1,1,00")]
    pages = [satellites[i : i + 4] for i in range(0, len(satellites), 4)]
    out = []
    for number, page in enumerate(pages, start=1):
        fields = ",".join(f"{prn:02d},{el:02d},{az:03d},{snr:02d}" for prn, el, az in page)
        out.append(sentence(f"GPGSV,{len(pages)},{number},{len(satellites):02d},{fields}"))
    return out


def sentences(fix: Fix) -> list[str]:
    """One reporting cycle for `fix`: RMC, GGA, GSA then GSV."""
    return [rmc(fix), gga(fix), gsa(fix), *gsv(fix)]


def nmea_log(fixes: Iterable[Fix], name: str = "medicobus") -> str:
    """A log gpsfake can replay: a comment header then CRLF-terminated sentences."""
    lines = [f"# Name: {name}"]
    for fix in fixes:
        lines.extend(sentences(fix))
    return "\r\n".join(lines) + "\r\n"
