"""The ground's pipeline, driven without MQTT and then through a real Mosquitto: each step
in order, once per batch, off the network thread; a message that makes a step raise is set
aside with the step and the error, and never holds back the rest of its batch nor what
comes after it; a store that cannot write keeps the batch unacknowledged until it can."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from ground.pipeline import Arrived, Pipeline
from ground.state import LiveState
from ground.store import Store
from medicobus import contract
from medicobus.brokers import Mosquitto
from medicobus.mqtt import BrokerSettings, new_client
from tests.harness import MONDAY_8AM, VEHICLE, ground, position, stored_ids, wait_until

POSITIONS = contract.topic(VEHICLE, contract.Channel.POSITION)
# Valid ISO 8601, but past the year 9999 once in UTC: no UTC time can hold it.
BEYOND_UTC = "9999-12-31T23:59:59-14:00"


def poison(i: int) -> bytes:
    return json.dumps({**position(i).model_dump(mode="json"), "ts": BEYOND_UTC}).encode()


def arrived(payload: bytes, topic: str = POSITIONS,
            at: datetime = MONDAY_8AM) -> Arrived:
    return Arrived(topic, payload, at)


class Recorder:
    """A board and alerts that note what the pipeline handed them, and from which thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, frozenset[str], str]] = []

    def evaluate(self, vehicles: set[str] | None = None) -> list[object]:
        self.calls.append(("alerts", frozenset(vehicles or ()), threading.current_thread().name))
        return []

    def notify(self, vehicles: set[str]) -> None:
        self.calls.append(("board", frozenset(vehicles), threading.current_thread().name))


def test_steps_run_in_order_once_per_batch(tmp_path: Path) -> None:
    seen = Recorder()
    exported: list[list[str]] = []
    pipeline = Pipeline(Store(tmp_path / "g.db"), LiveState(), {VEHICLE},
                        exports=[lambda ms: exported.append([m.id for m in ms])],
                        alerts=seen, board=seen)  # fmt: skip
    outcome = pipeline.run([arrived(position(i).to_json()) for i in range(5)])
    assert outcome.stored == 5 and outcome.changed == {VEHICLE}
    assert exported == [[position(i).id for i in range(5)]]  # what was new, once
    assert [c[0] for c in seen.calls] == ["alerts", "board"]  # alerts first, the board once
    assert pipeline.state.get(VEHICLE).position == position(4)
    # The same again: duplicates, nothing new to export, nobody woken.
    again = pipeline.run([arrived(position(i).to_json()) for i in range(5)])
    assert again.stored == 0 and again.duplicates == 5 and not again.changed
    assert len(exported) == 1 and len(seen.calls) == 2


class _RefusingStore(Store):
    """A fault put in on purpose (the contract now refuses what made the store raise, such as
    a time past the year 9999 in UTC): the store refuses any write holding these ids."""

    def __init__(self, path: Path, refused: set[str]) -> None:
        super().__init__(path)
        self.refused = refused

    def _record(self, messages: list[Any], dead: Any) -> None:  # type: ignore[override]
        if any(m.id in self.refused for m, _ in messages):
            raise OverflowError("refused on purpose")
        super()._record(messages, dead)


def test_a_message_the_store_cannot_write_is_set_aside_alone(tmp_path: Path) -> None:
    refused = {position(2).id, position(5).id}
    pipeline = Pipeline(_RefusingStore(tmp_path / "g.db", refused), LiveState(), {VEHICLE})
    items = [position(i).model_dump(mode="json") for i in (1, 2, 3)]
    batch = json.dumps({**position(9).model_dump(mode="json"), "kind": "batch",
                        "id": "batch0001", "items": items}).encode()
    outcome = pipeline.run([arrived(position(0).to_json()), arrived(position(5).to_json()),
                            arrived(batch, contract.topic(VEHICLE, contract.Channel.BATCH)),
                            arrived(position(6).to_json())])  # fmt: skip
    assert outcome.stored == 4 and outcome.dead_letters == 2 and outcome.duplicates == 0
    store = pipeline.store
    assert sorted(r[0] for r in store.db.execute("SELECT id FROM positions")) == [
        position(i).id for i in (0, 1, 3, 6)]
    letters = list(store.db.query("SELECT error, payload FROM dead_letters ORDER BY seq"))
    assert all(r["error"] == "store: OverflowError('refused on purpose')" for r in letters)
    # Each letter is the one refused message, whole, to look at or replay.
    assert sorted(json.loads(r["payload"])["id"] for r in letters) == sorted(refused)
    assert pipeline.state.get(VEHICLE).position == position(6)
    # And the next batch goes through as usual.
    assert pipeline.run([arrived(position(7).to_json())]).stored == 1


def test_a_time_past_the_year_9999_in_utc_is_refused_by_the_contract(tmp_path: Path) -> None:
    pipeline = Pipeline(Store(tmp_path / "g.db"), LiveState(), {VEHICLE})
    outcome = pipeline.run([arrived(position(1).to_json()), arrived(poison(2)),
                            arrived(position(3).to_json())])  # fmt: skip
    assert outcome.stored == 2 and outcome.dead_letters == 1
    (letter,) = pipeline.store.db.query("SELECT error, payload FROM dead_letters")
    assert "cannot be represented in UTC" in letter["error"]
    assert letter["payload"] == poison(2)


class _RefusingState(LiveState):
    """A fault put in on purpose (no real message makes the live state raise today): the
    live state refuses one message id."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    def apply(self, message: object, received: object) -> None:  # type: ignore[override]
        if getattr(message, "id", None) == self.refused:
            raise ValueError("refused on purpose")
        super().apply(message, received)  # type: ignore[arg-type]


def test_a_message_a_later_step_refuses_is_set_aside_with_the_step(tmp_path: Path) -> None:
    pipeline = Pipeline(Store(tmp_path / "g.db"), _RefusingState(position(2).id), {VEHICLE})
    outcome = pipeline.run([arrived(position(i).to_json()) for i in range(1, 4)])
    assert outcome.stored == 3  # stored: nothing acknowledged is lost
    assert pipeline.state.get(VEHICLE).position == position(3)
    (letter,) = pipeline.store.db.query("SELECT error, payload FROM dead_letters")
    assert letter["error"] == "live state: ValueError('refused on purpose')"
    assert json.loads(letter["payload"])["id"] == position(2).id
    assert pipeline.stats["dead_letters"] == 1


def test_a_failing_step_about_the_batch_is_counted_and_the_rest_goes_on(tmp_path: Path) -> None:
    seen = Recorder()

    def broken_export(messages: list[object]) -> None:
        raise ConnectionError("export down")

    pipeline = Pipeline(Store(tmp_path / "g.db"), LiveState(), {VEHICLE},
                        exports=[broken_export], alerts=seen, board=seen)  # fmt: skip
    assert pipeline.run([arrived(position(1).to_json())]).stored == 1
    assert pipeline.stats["step_errors"] == 1
    assert [c[0] for c in seen.calls] == ["alerts", "board"]


def test_poison_through_the_broker_is_acknowledged_and_never_comes_back(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    g = ground(tmp_path, mosquitto.port)
    woken: list[str] = []
    g.board.subscribe(lambda communes: woken.append(threading.current_thread().name))
    pub = new_client(BrokerSettings(port=mosquitto.port), "bus-sim", persistent=False)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        pub.publish(POSITIONS, poison(1), qos=1)
        pub.publish(POSITIONS, position(2).to_json(), qos=1).wait_for_publish(5)
        wait_until(lambda: stored_ids(g) == [position(2).id], what="the message behind stored")
        wait_until(lambda: g.store.count("dead_letters") == 1, what="the poison set aside")
        wait_until(lambda: bool(woken), what="the pages woken")
        assert set(woken) == {"pipeline"}  # not paho's network thread
        g.stop()
        # A restart: the persistent session hands back nothing, the poison was acknowledged.
        g = ground(tmp_path, mosquitto.port)
        pub.publish(POSITIONS, position(3).to_json(), qos=1).wait_for_publish(5)
        wait_until(lambda: len(stored_ids(g)) == 2, what="the next message stored")
        assert g.store.count("dead_letters") == 1
    finally:
        pub.loop_stop()
        g.stop()


def test_a_locked_database_keeps_the_batch_until_it_can_write(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    g = ground(tmp_path, mosquitto.port)
    blocker = sqlite3.connect(tmp_path / "ground.db", timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # e.g. a backup holding the file
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bus-sim")
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        pub.publish(POSITIONS, position(1).to_json(), qos=1).wait_for_publish(5)
        time.sleep(2)  # the pipeline has the batch and waits for the lock
        assert blocker.execute("SELECT COUNT(*) FROM positions").fetchone() == (0,)
        assert g.ingest.stats["stored"] == 0  # not through the pipeline, not acknowledged
        blocker.rollback()
        blocker.close()
        wait_until(lambda: stored_ids(g) == [position(1).id], timeout=30,
                   what="the batch written once the lock went")  # fmt: skip
        wait_until(lambda: g.ingest.stats["stored"] == 1, what="counted once")
        assert g.store.count("dead_letters") == 0
    finally:
        pub.loop_stop()
        g.stop()


def test_a_batch_is_judged_item_by_item_and_letters_are_kept_whole(tmp_path: Path) -> None:
    pipeline = Pipeline(Store(tmp_path / "g.db"), LiveState(), {VEHICLE})
    items = [position(i).model_dump(mode="json") for i in range(500)]
    items[250]["acc"] = "about ten metres"  # one item the contract refuses
    items[251]["vehicle"] = "another-bus"  # one that says it is another bus
    batch = json.dumps({**position(999).model_dump(mode="json"), "kind": "batch",
                        "id": "batch0002", "items": items}).encode()
    # Drained ten minutes after the last of them was taken (they are a second apart).
    outcome = pipeline.run([arrived(batch, contract.topic(VEHICLE, contract.Channel.BATCH),
                                    MONDAY_8AM + timedelta(minutes=18))])
    assert outcome.stored == 498 and outcome.dead_letters == 2
    letters = list(pipeline.store.db.query(
        "SELECT error, payload, size FROM dead_letters ORDER BY seq"))
    assert letters[0]["error"].startswith("items.250: position.acc: Input should be a valid number")
    assert json.loads(letters[0]["payload"]) == items[250]  # the item, whole
    assert "another-bus" in letters[1]["error"]
    assert json.loads(letters[1]["payload"])["id"] == position(251).id
    # A refused message of 88 kB is kept whole, not cut at 64 kB.
    big = json.dumps({**position(1000).model_dump(mode="json"), "lat": 123.0,
                      "note": "x" * 88_000}).encode()
    pipeline.run([arrived(big)])
    (last,) = pipeline.store.db.query("SELECT payload, size FROM dead_letters "
                                      "ORDER BY seq DESC LIMIT 1")
    assert last["payload"] == big and last["size"] == len(big) > 88_000
