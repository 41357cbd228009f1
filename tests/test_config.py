"""Broken configuration gets an error naming the file, the line or key, and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from ground.fleet import load_fleet
from ground.service import load_ground
from medicobus.cli import main
from medicobus.settings import ConfigError
from onboard.config import load_onboard
from tests.harness import FLEET

STOP = """
[[stops]]
id = "noce"
commune = "Nocé"
insee = "61309"
lat = 48.38
lon = 0.67
"""
VEHICLE = '[[vehicles]]\nid = "bus-1"\nname = "Bus"\n'


def entry(**fields: str) -> str:
    base = {"vehicle": "bus-1", "stop": "noce", "day": "lundi", "half": "matin",
            "arrive": "08:30", "depart": "12:00", **fields}  # fmt: skip
    return "[[timetable]]\n" + "".join(f'{k} = "{v}"\n' for k, v in base.items())


def fleet_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "fleet.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_fleet(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    return message


def test_the_shipped_fleet_loads() -> None:
    fleet = load_fleet(FLEET)
    assert {s.insee for s in fleet.stops} >= {"61309", "61038"}


def test_french_and_english_day_names(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(VEHICLE + STOP + entry(day="Monday", half="Après-midi"), encoding="utf-8")
    e = load_fleet(path).timetable[0]
    assert (e.day, e.half) == (0, "pm")


@pytest.mark.parametrize(("text", "expected"), [
    (VEHICLE + STOP + "[[timetable]\n", "invalid TOML"),
    (VEHICLE + STOP + "[[timetable]\n", "at line 11, column 12"),
    (VEHICLE + STOP + entry(day="lundee"), "timetable[0].day: day must be one of lundi"),
    (VEHICLE + STOP + entry(half="nuit"), "timetable[0].half: half must be matin"),
    (VEHICLE + STOP + entry(arrive="8h30"), "timetable[0].arrive"),
    (VEHICLE + STOP + entry(arrive="14:00", depart="12:00"), "depart 12:00 is not after"),
    (VEHICLE + STOP + entry(stop="nowhere"), "timetable[0]: unknown stop 'nowhere'"),
    (VEHICLE + STOP + entry(vehicle="bus-9"), "timetable[0]: unknown vehicle 'bus-9'"),
    (VEHICLE + STOP.replace("61309", "6130"), "stops[0].insee"),
    (VEHICLE + STOP.replace("48.38", "148.38"), "stops[0].lat"),
    (VEHICLE + STOP + entry() + entry(arrive="11:00", depart="13:00"), "two visits at once"),
    (VEHICLE + STOP + entry() + "colour = 'blue'\n", "colour"),
    ('timezone = "Mars/Olympus"\n' + VEHICLE + STOP, "unknown time zone"),
])  # fmt: skip
def test_broken_fleet_files_say_what_and_where(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in fleet_error(tmp_path, text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fleet.toml: file not found"):
        load_fleet(tmp_path / "fleet.toml")


def test_onboard_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "onboard.toml"
    path.write_text('vehicle = "Bus 1!"\n[gps]\nport = 99999\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_onboard(path)
    assert f"{path}: line 1: vehicle" in str(caught.value)
    assert f"{path}: gps.port" in str(caught.value)


def test_a_bus_account_must_be_its_vehicle(tmp_path: Path) -> None:
    path = tmp_path / "onboard.toml"
    path.write_text('vehicle = "bus-1"\n[broker]\nusername = "bus-2"\npassword = "x"\n',
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="must be the vehicle id 'bus-1'"):
        load_onboard(path)


def test_shipped_example_configs_load() -> None:
    root = Path(__file__).resolve().parents[1] / "config"
    assert load_onboard(root / "onboard.toml").vehicle == "perche-1"
    assert load_ground(root / "ground.toml").fleet.exists()


def test_the_command_reports_config_errors_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "ground.toml"
    bad.write_text('fleet = "missing.toml"\n[http]\nport = "eighty"\n', encoding="utf-8")
    assert main(["ground", "--config", str(bad), "--check"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "http.port" in err and "Traceback" not in err


def test_the_command_checks_a_good_config(capsys: pytest.CaptureFixture[str]) -> None:
    config = Path(__file__).resolve().parents[1] / "config" / "ground.toml"
    assert main(["ground", "--config", str(config), "--check"]) == 0
    assert "1 vehicles, 6 stops" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["demo", "onboard", "kiosk", "ground"])
def test_each_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert "--" in capsys.readouterr().out
