"""NMEA sentences written for gpsfake. The round trip through a real gpsd is in
test_gps_source.py."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from onboard.telemetry import nmea
from onboard.telemetry.fix import Fix

T0 = datetime(2024, 3, 4, 8, 0, 0, tzinfo=UTC)


def moving(acc: float | None = 10.0) -> Fix:
    return Fix(T0, 48.3838, -0.6783, mode=3, speed=22.2, heading=271.5, acc=acc)


def fields(line: str) -> list[str]:
    assert nmea.is_valid(line), line
    return line[1:-3].split(",")


def test_checksum_of_textbook_sentences() -> None:
    gga = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"
    rmc = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
    assert nmea.checksum(gga[1:-3]) == "47"
    assert nmea.checksum(rmc[1:-3]) == "6A"
    assert nmea.is_valid(gga) and nmea.is_valid(rmc)
    assert not nmea.is_valid(gga.replace("545.4", "545.5"))
    assert not nmea.is_valid("GPGGA,1*00") and not nmea.is_valid("$GPGGA,1")


def test_every_sentence_has_a_valid_checksum() -> None:
    nofix = Fix(T0, math.nan, math.nan, mode=1)
    for fix in (moving(), moving(None), nofix):
        lines = nmea.sentences(fix)
        assert [line[:6] for line in lines[:3]] == ["$GPRMC", "$GPGGA", "$GPGSA"]
        assert all(nmea.is_valid(line) for line in lines)


def test_position_speed_time_are_written() -> None:
    rmc = fields(nmea.rmc(moving()))
    assert rmc[1] == "080000.00" and rmc[2] == "A" and rmc[9] == "040324"
    lat = int(rmc[3][:2]) + float(rmc[3][2:]) / 60
    lon = int(rmc[5][:3]) + float(rmc[5][3:]) / 60
    assert (rmc[4], rmc[6]) == ("N", "W")
    assert lat == pytest.approx(48.3838, abs=1e-6) and lon == pytest.approx(0.6783, abs=1e-6)
    assert float(rmc[7]) / nmea.KNOTS_PER_MPS == pytest.approx(22.2, abs=0.001)
    assert float(rmc[8]) == 271.5
    gga = fields(nmea.gga(moving()))
    assert gga[6] == "1" and int(gga[7]) == 12 and float(gga[9]) == nmea.DEFAULT_ALTITUDE_M


def test_no_fix_sentences() -> None:
    fix = Fix(T0 + timedelta(milliseconds=250), math.nan, math.nan, mode=0)
    rmc, gga, gsa, *gsv = nmea.sentences(fix)
    assert fields(rmc)[1:4] == ["080000.25", "V", ""]
    assert fields(gga)[6] == "0" and fields(gga)[2] == ""
    assert fields(gsa)[2] == "1"
    assert gsv == ["$GPGSV,1,1,00*" + nmea.checksum("GPGSV,1,1,00")]
    # a 2D/3D mode with a NaN position is no fix either
    assert fields(nmea.rmc(Fix(T0, math.nan, 1.0, mode=3)))[2] == "V"


def test_sky_geometry_follows_accuracy() -> None:
    elevations = [nmea.ring_elevation_deg(acc) for acc in (5, 8, 10, 20, 30, 100)]
    assert elevations == sorted(elevations)
    assert elevations[0] == nmea.MIN_RING_ELEVATION and elevations[-1] == nmea.MAX_RING_ELEVATION
    for acc in (8.0, 10.0, 20.0):  # the xdop gpsd will compute from this sky, x 15 m
        cos_e = math.cos(math.radians(nmea.ring_elevation_deg(acc)))
        epx = nmea.EPXY_PER_DOP_M * math.sqrt(2 / nmea.RING_SATELLITES) / cos_e
        assert epx == pytest.approx(acc, rel=0.06)
    gsv = nmea.gsv(moving())
    assert len(gsv) == 3 and all(line.startswith("$GPGSV,3,") for line in gsv)


def test_log_is_crlf_with_a_header() -> None:
    fixes = [moving(), Fix(T0 + timedelta(seconds=1), math.nan, math.nan, mode=0)]
    log = nmea.nmea_log(fixes, name="test")
    lines = log.split("\r\n")
    assert lines[0] == "# Name: test" and lines[-1] == ""
    assert all(nmea.is_valid(line) for line in lines[1:-1])
    assert len(lines[1:-1]) == 6 + 4
