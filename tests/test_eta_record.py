"""The accuracy record: what the ground publishes is kept (sampled), survives a restart,
is scored once the bus has arrived, and comes out as a table and a CSV."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ground.accuracy import Prediction
from ground.eta_record import KEEP, EtaRecord
from medicobus.brokers import Mosquitto
from medicobus.cli import main
from tests.clocks import ManualClock
from tests.harness import FLEET, VEHICLE, ground, wait_until
from tests.test_eta import BELLEME, NOCE, PERV, at, event

pytestmark = pytest.mark.timeout(60)


def predictions(made: datetime, minutes_ahead: float) -> Prediction:
    return Prediction(made, NOCE.visit, made + timedelta(minutes=minutes_ahead), VEHICLE,
                      "noce")


def test_kept_every_minute_near_every_five_further_and_kept_across_a_restart(
        tmp_path: Path) -> None:
    record = EtaRecord(tmp_path / "ground.db")
    start = at(7, 0)
    kept = [record.note([predictions(start + timedelta(minutes=m), 90 - m)])
            for m in range(0, 90)]
    # 90 min ahead down to 1: every 5 min while 20 min or more ahead, then every minute.
    assert sum(kept[:71]) == 15 and sum(kept[71:]) == 19
    assert record.note([predictions(start + timedelta(minutes=89), 1)]) == 0  # seen
    record.close()
    again = EtaRecord(tmp_path / "ground.db")
    assert len(again.predictions(start, start + timedelta(hours=2))) == 34
    assert again.purge(start + KEEP + timedelta(minutes=30)) == 6  # older than a year's keep
    again.close()


def test_the_service_records_what_it_publishes_and_the_record_is_scored(
        tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock(at(8, 0))
    service = ground(tmp_path, mosquitto.port, clock)  # type: ignore[arg-type]
    try:
        for minute in range(30):  # the board's ETAs, noted once a minute of the clock
            clock.set(at(8, minute))
            service._note_etas()
        service.store.record([(event("arrival", NOCE, at(8, 27)), at(8, 27))])
        service.state.apply(event("arrival", NOCE, at(8, 27)), at(8, 27))
        wait_until(lambda: len(service.eta_record.predictions(at(0, 0), at(23, 0))) > 0)
        made = service.eta_record.predictions(at(0, 0), at(23, 0))
        assert {p.visit for p in made} == {v.visit for v in (NOCE, BELLEME, PERV)}
    finally:
        service.stop()
    config = tmp_path / "ground.toml"
    config.write_text(f'fleet = "{FLEET}"\ndatabase = "ground.db"\n')
    out = tmp_path / "record.csv"
    assert main(["ground", "--config", str(config), "eta-accuracy", "--from", "2026-11-23",
                 "--to", "2026-11-23", "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "## stop" in printed and "| noce | 0–5 min |" in printed
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # Nocé's predictions made before it arrived at 08:27 (in the fleet's time), scored.
    assert rows and all(r["visite / visit"] == NOCE.visit for r in rows)
    assert all(r["réelle / actual"] == "2026-11-23T08:27:00+01:00" for r in rows)
    assert {r["dans la fenêtre / in window"] for r in rows} <= {"oui", "non", ""}
    assert len(rows) == len({r["faite à / made at"] for r in rows})  # once each minute



def test_the_record_is_a_named_migration_set_beside_the_store(tmp_path: Path) -> None:
    from ground.eta_record import migrations
    from ground.store import Store
    from medicobus.storage import open_database

    Store(tmp_path / "ground.db").close()  # a ground.db of before the record
    EtaRecord(tmp_path / "ground.db").close()
    EtaRecord(tmp_path / "ground.db").close()  # applied once
    db = open_database(tmp_path / "ground.db", synchronous="FULL")
    assert [m.name for m in migrations.applied(db)] == ["m001_eta_predictions"]
    assert migrations.pending(db) == []
    db.close()
