"""The contract refuses what it does not define, with the reason: booleans or strings for
numbers, integer times, a missing or unknown `v`, repeated keys, times UTC cannot hold;
and keeps what it promises to keep for newer buses (unknown fields, unknown flags)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from medicobus import contract

POSITION = {"v": 1, "id": "abcdefgh01", "vehicle": "perche-1", "ts": "2026-11-23T07:41:12Z",
            "kind": "position", "lat": 48.38, "lon": 0.67, "speed": 12.0}


def raw(**changes: Any) -> bytes:
    return json.dumps({**POSITION, **changes}).encode()


@pytest.mark.parametrize(("payload", "reason"), [
    (raw(lat=True), "position.lat: Input should be a valid number"),
    (raw(lat="48.5"), "position.lat: Input should be a valid number"),
    (raw(ts=1700000000), "position.ts: Input should be a valid datetime"),
    (raw(ts="9999-12-31T23:59:59-14:00"), "cannot be represented in UTC"),
    (raw(ts="0001-01-01T00:00:00+14:00"), "cannot be represented in UTC"),
    (raw(ts="2026-11-23T07:41:12"), "timezone"),  # a time without its offset
    (raw(v=2), "position.v: Input should be 1"),
    (json.dumps({k: v for k, v in POSITION.items() if k != "v"}).encode(),
     "v: the protocol version is missing"),
    (raw()[:-1] + b', "lat": 43.6}', "repeated key 'lat'"),
    (raw()[:-1] + b', "lat" : 43.6}', "repeated key 'lat'"),  # spaced, as other encoders write
])  # fmt: skip
def test_what_the_contract_does_not_define_is_refused_with_the_reason(payload: bytes,
                                                                      reason: str) -> None:
    with pytest.raises(contract.ContractError, match=reason.replace("(", r"\(")):
        contract.parse_uplink_items(payload)


def test_a_repeated_key_inside_a_reading_is_refused() -> None:
    reading = (b'{"v":1,"id":"abcdefgh02","vehicle":"perche-1","ts":"2026-11-23T07:41:12Z",'
               b'"kind":"reading","sensor":"fridge","values":{"temp_c":5.0,"temp_c":12.5}}')
    with pytest.raises(contract.ContractError, match="repeated key 'temp_c'"):
        contract.parse_uplink_items(reading)


def test_in_a_batch_only_the_item_that_repeats_a_key_is_refused() -> None:
    items = [json.dumps({**POSITION, "id": f"item{i:06d}"}) for i in range(3)]
    items[1] = items[1][:-1] + ', "lon": 9.9}'
    batch = ('{"v":1,"id":"batch00001","vehicle":"perche-1","ts":"2026-11-23T07:41:12Z",'
             f'"kind":"batch","items":[{",".join(items)}]}}').encode()
    judged = contract.parse_uplink_items(batch)
    assert [m.id for m in judged.items] == ["item000000", "item000002"]
    (refused,) = judged.refused
    assert refused.error == "items.1: repeated key 'lon'"
    # An item without its version is refused alone too.
    no_v = json.dumps({k: v for k, v in POSITION.items() if k != "v"})
    judged = contract.parse_uplink_items(batch.replace(items[1].encode(), no_v.encode()))
    assert [r.error for r in judged.refused] == ["items.1: v: the protocol version is missing"]


def test_what_looks_like_a_repeat_but_is_not_is_accepted() -> None:
    status = {"v": 1, "id": "abcdefgh03", "vehicle": "perche-1", "ts": "2026-11-23T07:41:12Z",
              "kind": "status", "state": "offline", "reason": 'said "state": fine'}
    assert contract.parse_uplink_items(json.dumps(status).encode()).items[0].reason == \
        'said "state": fine'
    # A field this version does not know (from a newer bus) is ignored, as promised.
    (message,) = contract.parse_uplink_items(raw(altitude_m=152.0)).items
    assert isinstance(message, contract.Position) and message.lat == 48.38


def test_an_unknown_flag_from_a_newer_bus_is_kept_as_unknown() -> None:
    reading = {"v": 1, "id": "abcdefgh04", "vehicle": "perche-1", "ts": "2026-11-23T07:41:12Z",
               "kind": "reading", "sensor": "fridge", "values": {"temp_c": None},
               "flags": {"temp_c": "door_open"}}
    (message,) = contract.parse_uplink_items(json.dumps(reading).encode()).items
    assert isinstance(message, contract.Reading) and message.flags == {"temp_c": "unknown"}
    # An event is not open: a new kind of event changes meaning, and is refused.
    event = {**POSITION, "kind": "event", "event": "detour", "visit": "v", "stop": "noce"}
    with pytest.raises(contract.ContractError, match="event.event"):
        contract.parse_uplink_items(json.dumps(event).encode())
