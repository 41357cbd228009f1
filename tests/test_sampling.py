"""The sampler: validity flags, deadbands, heartbeat, codes and staleness."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from medicobus import contract
from medicobus.settings import parse_toml
from onboard.config import OnboardSettings, SensorSettings
from onboard.telemetry.sampling import Sampler
from onboard.telemetry.sensors import Sample
from tests.clocks import ManualClock

T0 = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)


def settings(extra: str = "", type_: str = "fridge") -> SensorSettings:
    text = f'vehicle = "bus-1"\n[[sensors]]\ntype = "{type_}"\nport = "/dev/null"\n{extra}'
    return parse_toml(text, OnboardSettings, "test").sensors[0]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sampler(extra: str = "", name: str = "fridge") -> tuple[Sampler, ManualClock]:
    clock = ManualClock(T0)
    return Sampler(name, settings(extra), clock, vehicle="bus-1"), clock


def roundtrip(reading: contract.Reading) -> contract.Reading:
    parsed = contract.parse_uplink(reading.to_json())
    assert isinstance(parsed, contract.Reading)
    return parsed


def test_first_sample_sends_everything_then_only_what_moved_past_its_deadband() -> None:
    s, _ = sampler()
    first = s.feed(Sample(at(0), {"temp_c": 4.5, "temp2_c": 5.0}))
    assert first is not None and first.values == {"temp_c": 4.5, "temp2_c": 5.0}
    assert first.sensor == "fridge" and first.vehicle == "bus-1" and first.ts == at(0)
    assert s.feed(Sample(at(30), {"temp_c": 4.6, "temp2_c": 5.1})) is None  # < 0.2 °C
    moved = s.feed(Sample(at(60), {"temp_c": 4.7, "temp2_c": 5.1}))  # exactly 0.2: moved
    assert moved is not None and moved.values == {"temp_c": 4.7}  # only what changed
    # The deadband is measured from the last value SENT, so a slow drift is not lost.
    assert s.feed(Sample(at(90), {"temp_c": 4.8, "temp2_c": 5.15})) is None
    drift = s.feed(Sample(at(120), {"temp_c": 4.8, "temp2_c": 5.2}))
    assert drift is not None and drift.values == {"temp2_c": 5.2}
    assert s.stats["suppressed"] == 2


def test_deadbands_per_quantity_and_overrides() -> None:
    clock = ManualClock(T0)
    engine = Sampler("engine", settings(type_="engine"), clock, vehicle="bus-1")
    engine.feed(Sample(at(0), {"rpm": 1000, "coolant_c": 80, "speed_kmh": 50}))
    r = engine.feed(Sample(at(5), {"rpm": 1150, "coolant_c": 81.5, "speed_kmh": 50}))
    assert r is None  # rpm 200, coolant 2 °C
    r = engine.feed(Sample(at(10), {"rpm": 1250, "coolant_c": 82.5, "speed_kmh": 50}))
    assert r is not None and r.values == {"rpm": 1250, "coolant_c": 82.5}
    tuned = Sampler("engine", settings("deadbands = { rpm = 50 }", "engine"), clock,
                    vehicle="bus-1")
    tuned.feed(Sample(at(0), {"rpm": 1000}))
    r = tuned.feed(Sample(at(5), {"rpm": 1060}))
    assert r is not None and r.values == {"rpm": 1060}
    battery = Sampler("battery", settings(type_="battery"), clock, vehicle="bus-1")
    battery.feed(Sample(at(0), {"voltage_v": 12.80, "soc_pct": 80.0}))
    assert battery.feed(Sample(at(5), {"voltage_v": 12.83, "soc_pct": 80.5})) is None
    r = battery.feed(Sample(at(10), {"voltage_v": 12.85, "soc_pct": 81.0}))
    assert r is not None and r.values == {"voltage_v": 12.85, "soc_pct": 81.0}


def test_heartbeat_sends_everything() -> None:
    s, _ = sampler("heartbeat_s = 300")
    s.feed(Sample(at(0), {"temp_c": 4.5, "temp2_c": 5.0}, codes=[]))
    assert s.feed(Sample(at(299), {"temp_c": 4.5, "temp2_c": 5.0}, codes=[])) is None
    beat = s.feed(Sample(at(300), {"temp_c": 4.55, "temp2_c": 5.0}, codes=[]))
    assert beat is not None
    assert beat.values == {"temp_c": 4.55, "temp2_c": 5.0}
    assert beat.codes == []  # the (empty) set of codes goes with the heartbeat too
    assert s.feed(Sample(at(420), {"temp_c": 4.55, "temp2_c": 5.0}, codes=[])) is None
    assert s.feed(Sample(at(600), {"temp_c": 4.55, "temp2_c": 5.0}, codes=[])) is not None


@pytest.mark.parametrize(("raw", "flag"), [
    (math.nan, "nan"), (math.inf, "infinite"), (-math.inf, "infinite"),
    (300.0, "out_of_range"), (-55.0, "out_of_range"),
])
def test_impossible_values_are_null_and_flagged(raw: float, flag: str) -> None:
    s, _ = sampler()
    r = s.feed(Sample(at(0), {"temp_c": raw, "temp2_c": 4.0}))
    assert r is not None
    assert r.values == {"temp_c": None, "temp2_c": 4.0}
    assert r.flags == {"temp_c": flag}
    assert roundtrip(r).flags == {"temp_c": flag}  # valid on the wire


@pytest.mark.parametrize(("quantity", "bad", "good"), [
    ("coolant_c", 151.0, 105.0), ("soc_pct", 100.5, 99.0), ("voltage_v", 71.0, 13.0),
    ("rpm", 10_001.0, 800.0), ("speed_kmh", 251.0, 90.0), ("fuel_pct", -1.0, 50.0),
    ("current_a", -1001.0, -20.0), ("battery_v", 41.0, 12.4), ("temp_c", 61.0, 4.0),
])
def test_physical_ranges(quantity: str, bad: float, good: float) -> None:
    s, _ = sampler()
    assert s.check(quantity, bad) == (None, "out_of_range")
    assert s.check(quantity, good) == (good, None)


def test_range_override_from_config() -> None:
    s, _ = sampler("ranges = { temp_c = [-30, 20], temp3_c = [-30, 30] }")
    assert s.check("temp_c", 25.0) == (None, "out_of_range")
    assert s.check("temp2_c", 25.0) == (None, "out_of_range")  # temp_c's family
    assert s.check("temp3_c", 25.0) == (25.0, None)  # its own range wins


def test_flags_reported_when_they_appear_change_and_clear() -> None:
    s, _ = sampler()
    s.feed(Sample(at(0), {"temp_c": 4.5}))
    r = s.feed(Sample(at(30), {}, flags={"temp_c": "crc"}))
    assert r is not None and r.values == {"temp_c": None} and r.flags == {"temp_c": "crc"}
    assert s.feed(Sample(at(60), {}, flags={"temp_c": "crc"})) is None  # unchanged
    r = s.feed(Sample(at(90), {}, flags={"temp_c": "power_on_reset"}))
    assert r is not None and r.flags == {"temp_c": "power_on_reset"}
    r = s.feed(Sample(at(120), {"temp_c": 4.5}))  # back, even at the value sent before
    assert r is not None and r.values == {"temp_c": 4.5} and r.flags == {}
    r = s.feed(Sample(at(150), {"temp_c": math.nan}))
    assert r is not None and r.flags == {"temp_c": "nan"}
    r = s.feed(Sample(at(180), {"temp_c": math.inf}))
    assert r is not None and r.flags == {"temp_c": "infinite"}


def test_codes_sent_when_the_set_changes() -> None:
    s, _ = sampler(name="engine")
    r = s.feed(Sample(at(0), {"rpm": 800}, codes=["P0301"]))
    assert r is not None and r.codes == ["P0301"]
    assert s.feed(Sample(at(5), {"rpm": 800}, codes=["P0301"])) is None
    r = s.feed(Sample(at(10), {"rpm": 800}, codes=["P0420", "P0301", "P0301"]))
    assert r is not None and r.codes == ["P0301", "P0420"] and r.values == {}
    r = s.feed(Sample(at(15), {"rpm": 800}, codes=[]))
    assert r is not None and r.codes == []  # cleared: the ground must hear it
    # A sensor that does not know (None: car not answering) clears nothing.
    assert s.feed(Sample(at(20), {"rpm": 800}, codes=None)) is None
    assert roundtrip(r).codes == []


def test_silence_becomes_stale_once() -> None:
    s, clock = sampler("interval_s = 30\nstale_after_s = 120")
    s.feed(Sample(at(0), {"temp_c": 4.5, "temp2_c": 5.0}))
    clock.set(at(119))
    assert s.missing() is None
    clock.set(at(121))
    r = s.missing()
    assert r is not None and r.values == {"temp_c": None, "temp2_c": None}
    assert r.flags == {"temp_c": "stale", "temp2_c": "stale"} and r.ts == at(121)
    clock.set(at(400))
    assert s.missing() is None  # once per outage
    r = s.feed(Sample(at(401), {"temp_c": 4.5, "temp2_c": 5.0}))
    assert r is not None and r.values == {"temp_c": 4.5, "temp2_c": 5.0} and r.flags == {}


def test_never_sampled_sensor_sends_nothing() -> None:
    s, clock = sampler()
    clock.set(at(10_000))
    assert s.missing() is None


def test_a_plugins_bad_names_cost_the_quantity_not_the_reading() -> None:
    s, _ = sampler()
    r = s.feed(Sample(at(0), {"temp_c": 4.0, "Bad Name": 1.0}, codes=["P0301", "bad code!"],
                      flags={"temp2_c": "melted"}))
    assert r is not None
    assert r.values == {"temp_c": 4.0, "temp2_c": None}
    assert r.flags == {"temp2_c": "out_of_range"}
    assert r.codes == ["P0301"]
    roundtrip(r)


def test_values_rounded_and_valid_on_the_wire() -> None:
    s, _ = sampler(name="engine")
    r = s.feed(Sample(at(0), {"fuel_pct": 66.66666666666667, "battery_v": 14.687000000000001}))
    assert r is not None and r.values == {"fuel_pct": 66.667, "battery_v": 14.687}
    assert roundtrip(r) == r
