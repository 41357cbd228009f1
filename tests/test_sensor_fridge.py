"""The fridge's DS18B20 probes, read from a directory laid out as the kernel's w1 sysfs."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from medicobus.settings import ConfigError, parse_toml
from onboard.config import OnboardSettings
from onboard.telemetry.sampling import Sampler
from onboard.telemetry.sensors import build_sensor
from onboard.telemetry.sensors.fridge import FridgeSensor, ProbeError, parse_w1_slave
from tests.clocks import ManualClock

T0 = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)
SCRATCH = "72 01 4b 46 7f ff 0e 10 57"


def w1_text(milli_c: int, crc_ok: bool = True, scratch: str = SCRATCH) -> str:
    # Exactly what w1_therm writes: scratchpad, CRC verdict; scratchpad, t=millidegrees.
    return f"{scratch} : crc=57 {'YES' if crc_ok else 'NO'}\n{scratch} t={milli_c}\n"


def put_probe(base: Path, probe: str, text: str) -> None:
    (base / probe).mkdir(parents=True, exist_ok=True)
    (base / probe / "w1_slave").write_text(text)


@pytest.fixture
def w1(tmp_path: Path) -> Path:
    base = tmp_path / "devices"
    base.mkdir()
    # The bus master is listed too and must be ignored.
    (base / "w1_bus_master1").mkdir()
    return base


def test_parse_the_kernel_format() -> None:
    assert parse_w1_slave(w1_text(4562)) == pytest.approx(4.562)
    assert parse_w1_slave(w1_text(-1250)) == pytest.approx(-1.25)
    with pytest.raises(ProbeError) as crc:
        parse_w1_slave(w1_text(4562, crc_ok=False))
    assert crc.value.flag == "crc"
    with pytest.raises(ProbeError) as por:
        parse_w1_slave(w1_text(85000))
    assert por.value.flag == "power_on_reset"
    with pytest.raises(ProbeError) as zeros:  # CRC of zeros is zero: still not a reading
        parse_w1_slave(w1_text(0, scratch="00 00 00 00 00 00 00 00 00"))
    assert zeros.value.flag == "crc"
    for junk in ("", "garbage\n", f"{SCRATCH} : crc=57 YES\n"):
        with pytest.raises(ProbeError):
            parse_w1_slave(junk)


def test_one_probe_reads_temp_c(w1: Path) -> None:
    put_probe(w1, "28-0316a2791bff", w1_text(4562))
    sensor = FridgeSensor(w1, clock=ManualClock(T0))
    sample = sensor.read()
    assert sample is not None
    assert sample.values == {"temp_c": pytest.approx(4.562)}
    assert sample.flags == {}
    assert sample.ts == T0


def test_several_probes_ordered_by_id_and_named_by_settings(w1: Path) -> None:
    put_probe(w1, "28-000000000bbb", w1_text(5000))
    put_probe(w1, "28-000000000aaa", w1_text(4000))
    put_probe(w1, "28-000000000ccc", w1_text(6000))
    sensor = FridgeSensor(w1, clock=ManualClock(T0))
    sample = sensor.read()
    assert sample is not None
    assert sample.values == {"temp_c": 4.0, "temp2_c": 5.0, "temp3_c": 6.0}

    named = FridgeSensor(w1, clock=ManualClock(T0),
                         probes={"28-000000000ccc": "temp_freezer_c"})
    sample = named.read()
    assert sample is not None
    assert sample.values == {"temp_c": 4.0, "temp2_c": 5.0, "temp_freezer_c": 6.0}


def test_crc_failure_and_power_on_value_are_flagged_not_read(w1: Path) -> None:
    put_probe(w1, "28-000000000aaa", w1_text(4000, crc_ok=False))
    put_probe(w1, "28-000000000bbb", w1_text(85000))
    sensor = FridgeSensor(w1, clock=ManualClock(T0))
    sample = sensor.read()
    assert sample is not None
    assert sample.values == {}
    assert sample.flags == {"temp_c": "crc", "temp2_c": "power_on_reset"}
    assert sensor.stats["crc"] == 1 and sensor.stats["power_on_reset"] == 1

    # The sampler sends them as null with the flag: never stored as truth.
    conf = parse_toml('vehicle = "bus-1"\n[[sensors]]\ntype = "fridge"\n', OnboardSettings,
                      "t").sensors[0]
    reading = Sampler("fridge", conf, ManualClock(T0), vehicle="bus-1").feed(sample)
    assert reading is not None
    assert reading.values == {"temp_c": None, "temp2_c": None}
    assert reading.flags == {"temp_c": "crc", "temp2_c": "power_on_reset"}

    # Next conversion is good: values come back.
    put_probe(w1, "28-000000000aaa", w1_text(4100))
    put_probe(w1, "28-000000000bbb", w1_text(4300))
    sample = sensor.read()
    assert sample is not None and sample.flags == {}
    assert sample.values == {"temp_c": 4.1, "temp2_c": 4.3}


def test_unplugged_probe_is_stale_and_keeps_its_name(w1: Path) -> None:
    put_probe(w1, "28-000000000aaa", w1_text(4000))
    put_probe(w1, "28-000000000bbb", w1_text(5000))
    sensor = FridgeSensor(w1, clock=ManualClock(T0))
    assert sensor.read() is not None
    shutil.rmtree(w1 / "28-000000000aaa")  # the kernel removes an unplugged probe's dir
    sample = sensor.read()
    assert sample is not None
    assert sample.values == {"temp2_c": 5.0}  # not renumbered to temp_c
    assert sample.flags == {"temp_c": "stale"}
    put_probe(w1, "28-000000000aaa", w1_text(4200))
    sample = sensor.read()
    assert sample is not None and sample.values == {"temp_c": 4.2, "temp2_c": 5.0}


def test_no_probe_at_all_gives_none_and_never_raises(w1: Path, tmp_path: Path) -> None:
    sensor = FridgeSensor(w1, clock=ManualClock(T0))
    assert sensor.read() is None
    assert sensor.stats["no_probe"] == 1
    missing_bus = FridgeSensor(tmp_path / "no-such-dir", clock=ManualClock(T0))
    assert missing_bus.read() is None
    # A probe whose w1_slave is a directory (unreadable) is flagged stale, not raised.
    (w1 / "28-000000000aaa" / "w1_slave").mkdir(parents=True)
    sample = sensor.read()
    assert sample is not None and sample.flags == {"temp_c": "stale"}


def test_built_from_config(w1: Path) -> None:
    put_probe(w1, "28-000000000aaa", w1_text(3900))
    settings = parse_toml(
        f'vehicle = "bus-1"\n[[sensors]]\ntype = "fridge"\nw1_dir = "{w1}"\n'
        'interval_s = 15\nprobes = { "28-000000000aaa" = "temp_vaccines_c" }\n',
        OnboardSettings, "t")
    sensor = build_sensor(settings.sensors[0], ManualClock(T0))
    assert sensor.name == "fridge" and sensor.interval_s == 15
    sample = sensor.read()
    assert sample is not None and sample.values == {"temp_vaccines_c": 3.9}
    with pytest.raises(ConfigError, match=r"sensors\[0\]\.probes"):
        parse_toml('vehicle = "bus-1"\n[[sensors]]\ntype = "fridge"\n'
                   'probes = { "28-1" = "Temp C" }\n', OnboardSettings, "t")
