from __future__ import annotations

from pathlib import Path

from medicobus import contract
from onboard.outbox import Outbox
from tests.harness import MONDAY_8AM, VEHICLE, position


def event(i: int) -> contract.VisitEvent:
    return contract.VisitEvent(id=f"evt{i:08d}", vehicle=VEHICLE, ts=MONDAY_8AM,
                               event="arrival", visit=f"v{i}", stop="noce", lat=48.0, lon=0.6)


def test_rows_survive_reopening(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    for i in range(10):
        box.put(position(i))
    box.close()
    again = Outbox(tmp_path / "o.db")
    rows = again.after(0, 100)
    assert [contract.parse_uplink(r.payload).id for r in rows] == [f"pos{i:08d}" for i in range(10)]


def test_remove_takes_only_what_was_acknowledged(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    for i in range(5):
        box.put(position(i))
    rows = box.after(0, 100)
    box.remove([rows[1].seq, rows[3].seq])
    assert [r.seq for r in box.after(0, 100)] == [rows[0].seq, rows[2].seq, rows[4].seq]


def test_full_outbox_thins_old_positions_and_keeps_every_event(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_rows=1000)
    for i in range(3000):
        box.put(position(i))
        if i % 100 == 0:
            box.put(event(i))
    assert box.count() <= 1000
    kinds = [r.kind for r in box.after(0, 10_000)]
    assert kinds.count("event") == 30
    rows = box.after(0, 10_000)
    ids = [contract.parse_uplink(r.payload).id for r in rows if r.kind == "position"]
    assert ids[-1] == "pos00002999"  # the newest positions are all there
    assert "pos00002900" in ids and "pos00002950" in ids
    assert box.thinned > 0


def test_sequence_numbers_never_go_back(tmp_path: Path) -> None:
    """The link tells backlog from live data by sequence: an emptied box must not reuse."""
    box = Outbox(tmp_path / "o.db")
    box.put(position(0))
    last = box.last_seq()
    box.remove([last])
    box.put(position(1))
    assert box.after(0, 10)[0].seq > last
