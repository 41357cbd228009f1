"""Equipment readings on the ground: stored once, flagged values never stored as truth,
the latest per quantity in live state, a series per quantity for charts and exports."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from ground.pipeline import Arrived, Pipeline
from ground.state import LiveState
from ground.store import Store
from medicobus import contract
from tests.harness import MONDAY_8AM, VEHICLE

TOPIC = contract.topic(VEHICLE, contract.Channel.READING)


def reading(minutes: int, **values: float | None) -> contract.Reading:
    flags = {k: "out_of_range" for k, v in values.items() if v is None}
    return contract.Reading(vehicle=VEHICLE, ts=MONDAY_8AM + timedelta(minutes=minutes),
                            sensor="fridge", values=values, flags=flags)  # type: ignore[arg-type]


def test_readings_are_stored_once_with_flags_kept(tmp_path: Path) -> None:
    ingest = Pipeline(Store(tmp_path / "g.db"), LiveState(), {VEHICLE})
    warm = reading(1, temp_c=9.5)
    batch = [reading(0, temp_c=4.0), warm, reading(2, temp_c=None), warm]  # warm: resent
    received = [Arrived(TOPIC, r.to_json(), MONDAY_8AM) for r in batch]
    received.append(received[0])  # delivered twice
    ingest.run(received)
    series = ingest.store.series(VEHICLE, "fridge", "temp_c", MONDAY_8AM)
    assert [(v, f) for _, v, f in series] == [(4.0, None), (9.5, None), (None, "out_of_range")]
    latest = ingest.state.get(VEHICLE).readings[("fridge", "temp_c")]
    assert latest[1:] == (None, "out_of_range")
    # Rebuilt after a restart from the store alone.
    again = LiveState()
    for message, at in ingest.store.history(since=MONDAY_8AM - timedelta(hours=1)):
        again.apply(message, at)
    assert again.get(VEHICLE).readings == ingest.state.get(VEHICLE).readings


def test_an_impossible_value_is_refused_at_the_door(tmp_path: Path) -> None:
    ingest = Pipeline(Store(tmp_path / "g.db"), LiveState(), {VEHICLE})
    bad = reading(0, temp_c=4.0).to_json().replace(b"4.0", b"Infinity")
    ingest.run([Arrived(TOPIC, bad, MONDAY_8AM)])
    assert ingest.store.count("dead_letters") == 1
    assert ingest.store.count("samples") == 0
