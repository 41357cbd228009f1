"""Ingest never crashes and never stops consuming: bad input is set aside and counted.
The pipeline is driven here without MQTT, then through a real broker."""

from __future__ import annotations

import json
import queue
import sqlite3
import tempfile
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ground.ingest import Received, committed
from ground.pipeline import Arrived, Pipeline
from ground.state import LiveState
from ground.store import Store
from medicobus import contract
from medicobus.brokers import Mosquitto
from medicobus.mqtt import BrokerSettings, new_client
from tests.harness import MONDAY_8AM, VEHICLE, ground, position, stored_ids, wait_until

TOPICS = st.sampled_from([
    contract.topic(VEHICLE, c) for c in contract.Channel
] + ["medicobus/v1/vehicles/ghost/position", "medicobus/v1/x", "other/topic"])  # fmt: skip

JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
VALID = position(1).model_dump(mode="json")
# Valid messages with one field broken: the nastiest inputs are nearly right.
MUTANTS = st.builds(lambda k, v: {**VALID, k: v}, st.sampled_from(sorted(VALID)), JSON)
BATCHES = st.builds(lambda items: {**VALID, "kind": "batch", "items": items},
                    st.lists(MUTANTS | JSON, max_size=5))
PAYLOADS = (st.binary(max_size=300)
            | JSON.map(lambda d: json.dumps(d).encode())
            | (MUTANTS | BATCHES).map(lambda d: json.dumps(d).encode()))  # fmt: skip


def offline_pipeline(tmp_path: Path) -> Pipeline:
    """The real pipeline over a real store, without MQTT: exactly the validation and
    storage path each message takes."""
    return Pipeline(Store(tmp_path / "g.db"), LiveState(), {VEHICLE})


@settings(max_examples=400, deadline=None)
@given(batch=st.lists(st.tuples(TOPICS, PAYLOADS), min_size=1, max_size=8))
def test_fuzzed_payloads_never_crash_ingest(batch: list[tuple[str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _ingest_one_fuzzed_batch(Path(tmp), batch)


def _ingest_one_fuzzed_batch(tmp_path: Path, batch: list[tuple[str, bytes]]) -> None:
    ingest = offline_pipeline(tmp_path)
    received = [Arrived(t, p, MONDAY_8AM) for t, p in batch]
    good = Arrived(contract.topic(VEHICLE, contract.Channel.POSITION), position(7).to_json(),
                   MONDAY_8AM)
    ingest.run([*received, good])
    # The good message behind the garbage got through, and whatever was refused was kept.
    assert "pos00000007" in [r[0] for r in ingest.store.db.execute("SELECT id FROM positions")]
    assert ingest.stats["received"] == len(batch) + 1
    assert ingest.store.count("dead_letters") == ingest.stats["dead_letters"]
    ingest.store.close()


def test_dead_letters_keep_what_was_wrong(tmp_path: Path) -> None:
    ingest = offline_pipeline(tmp_path)
    pos_topic = contract.topic(VEHICLE, contract.Channel.POSITION)
    other = position(2, vehicle="someone-else").to_json()
    bad = [
        (pos_topic, b"\xff\xfe not json"),
        (pos_topic, json.dumps({**VALID, "lat": 123.0}).encode()),
        (pos_topic, other),  # a vehicle writing as another
        ("medicobus/v1/vehicles/ghost/position", position(3, vehicle="ghost").to_json()),
        (contract.topic(VEHICLE, contract.Channel.EVENT), position(4).to_json()),
    ]
    ingest.run([Arrived(t, p, MONDAY_8AM) for t, p in bad])
    rows = list(ingest.store.db.query("SELECT topic, error, payload FROM dead_letters"))
    assert len(rows) == 5
    errors = " | ".join(r["error"] for r in rows)
    for expected in ("Invalid JSON", "lat", "someone-else", "unknown vehicle 'ghost'",
                     "a position message on the event topic"):
        assert expected in errors
    assert rows[0]["payload"] == b"\xff\xfe not json"
    assert ingest.store.count("positions") == 0


def test_garbage_through_the_broker_does_not_stop_consuming(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    g = ground(tmp_path, mosquitto.port)
    pub = new_client(BrokerSettings(port=mosquitto.port), "rogue", persistent=False)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    topic = contract.topic(VEHICLE, contract.Channel.POSITION)
    for payload in (b"", b"{", b"null", b"[]", "é".encode("latin-1"), b"\x00" * 1000,
                    b'{"v": 2}', json.dumps({**VALID, "lat": float("nan")}).encode()):
        pub.publish(topic, payload, qos=1)
    pub.publish(topic, position(5).to_json(), qos=1).wait_for_publish(5)
    wait_until(lambda: stored_ids(g) == ["pos00000005"], what="the good message stored")
    wait_until(lambda: g.store.count("dead_letters") == 8, what="eight dead letters")
    # The counters follow the commit: wait for them rather than race them.
    wait_until(lambda: g.ingest.stats["dead_letters"] == 8, what="eight counted")
    pub.loop_stop()
    g.stop()


def test_the_same_message_twice_is_stored_once(tmp_path: Path) -> None:
    ingest = offline_pipeline(tmp_path)
    msg = Arrived(contract.topic(VEHICLE, contract.Channel.POSITION), position(1).to_json(),
                  MONDAY_8AM)
    batch = json.dumps({**position(2).model_dump(mode="json"), "kind": "batch",
                        "id": "batch0001", "items": [VALID, VALID]}).encode()
    ingest.run([msg, msg])
    ingest.run([Arrived(contract.topic(VEHICLE, contract.Channel.BATCH), batch, MONDAY_8AM)])
    assert ingest.store.count("positions") == 1
    assert ingest.stats == {"received": 3, "stored": 1, "duplicates": 3, "dead_letters": 0,
                            "off_clock": 0, "step_errors": 0}



def test_each_bus_is_told_what_the_ground_committed_and_only_once_committed(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    g = ground(tmp_path, mosquitto.port)
    told: queue.Queue[tuple[str, contract.Ack]] = queue.Queue()
    bus = new_client(BrokerSettings(port=mosquitto.port), "buses", persistent=False)
    bus.on_message = lambda c, u, m: told.put((m.topic, contract.parse_ack(bytes(m.payload))))
    bus.connect("127.0.0.1", mosquitto.port)
    bus.loop_start()
    bus.subscribe(contract.topic("+", contract.Channel.ACK), qos=1)
    pos_topic = contract.topic(VEHICLE, contract.Channel.POSITION)

    # A store that cannot commit: nothing is acknowledged until it can.
    blocker = sqlite3.connect(tmp_path / "ground.db", timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    bus.publish(pos_topic, position(1).to_json(), qos=1).wait_for_publish(5)
    time.sleep(1.5)
    assert told.empty()
    blocker.rollback()
    blocker.close()
    assert told.get(timeout=10) == (contract.topic(VEHICLE, contract.Channel.ACK),
                                    contract.Ack(vehicle=VEHICLE, ids=[position(1).id]))
    assert stored_ids(g) == [position(1).id]

    # Stored, skipped as a duplicate or set aside as a dead letter: all acknowledged; a
    # batch by its own id. Not a status (not from the outbox), nor what has no id.
    batch = {**position(2).model_dump(mode="json"), "kind": "batch", "id": "batch0001",
             "items": [position(3).model_dump(mode="json"), {**VALID, "lat": 123.0}]}
    sent = [
        (pos_topic, position(1).to_json()),  # a resend
        (pos_topic, json.dumps({**VALID, "id": "badlat0001", "lat": 123.0}).encode()),
        (contract.topic(VEHICLE, contract.Channel.BATCH), json.dumps(batch).encode()),
        (contract.topic(VEHICLE, contract.Channel.STATUS), contract.Status(
            id="status0001", vehicle=VEHICLE, ts=MONDAY_8AM, state="online").to_json()),
        (pos_topic, b"{"),
        ("medicobus/v1/vehicles/ghost/position", position(4, vehicle="ghost").to_json()),
    ]
    for name, payload in sent:
        bus.publish(name, payload, qos=1)
    expected = {VEHICLE: {position(1).id, "badlat0001", "batch0001"}, "ghost": {position(4).id}}
    acked: dict[str, set[str]] = {}
    while acked != expected:
        topic, ack = told.get(timeout=10)
        assert topic == contract.topic(ack.vehicle, contract.Channel.ACK)
        acked.setdefault(ack.vehicle, set()).update(ack.ids)
        assert acked[ack.vehicle] <= expected[ack.vehicle], acked
    wait_until(lambda: g.store.count("dead_letters") == 4, what="four dead letters")
    assert sorted(stored_ids(g)) == [position(i).id for i in (1, 3)]
    time.sleep(0.5)
    assert told.empty()  # and its own acks, echoed back, are not acknowledged
    bus.loop_stop()
    g.stop()


def test_a_batch_is_acknowledged_once_per_vehicle_each_id_once() -> None:
    def received(vehicle: str, channel: contract.Channel, message_id: str) -> Received:
        payload = {**VALID, "id": message_id, "vehicle": vehicle}
        return Received(contract.topic(vehicle, channel), json.dumps(payload).encode(),
                        0, 1, 1, MONDAY_8AM)

    pos, batch = contract.Channel.POSITION, contract.Channel.BATCH
    many = [received("other-bus", pos, f"many{i:06d}") for i in range(1200)]
    acks = committed([received(VEHICLE, pos, "first0001"), *many[:600],
                      received(VEHICLE, batch, "batch0001"),
                      received(VEHICLE, pos, "first0001"),  # redelivered in the same batch
                      received(VEHICLE, contract.Channel.ACK, "echo00001"), *many[600:]])
    assert [(a.vehicle, len(a.ids)) for a in acks] == [
        (VEHICLE, 2), ("other-bus", 500), ("other-bus", 500), ("other-bus", 200)]
    assert acks[0].ids == ["first0001", "batch0001"]
    assert [i for a in acks[1:] for i in a.ids] == [f"many{i:06d}" for i in range(1200)]
