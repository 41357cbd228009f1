"""Dead letters bounded on a real SQLite store: kept `keep_days`, at most `max_rows` and
`max_mb`, the oldest purged first, in a transaction of its own that applies whole or not at
all; kept and purged counted across restarts. The limits read from the ground's config."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ground.service import load_ground
from ground.store import DeadLetter, DeadLetterCounts, DeadLetterLimits, Store
from tests.clocks import ManualClock
from tests.harness import position

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TOPIC = "medicobus/v1/vehicles/perche-1/position"


def letter(i: int, received: datetime, size: int = 100) -> DeadLetter:
    return DeadLetter(TOPIC, f"{i:05d}".encode().ljust(size, b"x"), f"bad {i}", received)


def kept(store: Store) -> list[str]:
    return [r[0].decode()[:5] for r in store.db.execute(
        "SELECT payload FROM dead_letters ORDER BY seq")]


def test_dead_letters_are_kept_for_their_days_then_purged(tmp_path: Path) -> None:
    clock = ManualClock(NOW)
    store = Store(tmp_path / "g.db", clock, DeadLetterLimits(keep_days=30))
    store.record([], [letter(0, NOW - timedelta(days=31)), letter(1, NOW - timedelta(days=29))])
    assert kept(store) == ["00001"]  # purged after the batch that set letters aside
    assert store.dead_letter_counts() == DeadLetterCounts(kept=1, kept_bytes=100, purged=1)
    # With no new letter, the daily purge takes the next one once its days are over.
    clock.set(NOW + timedelta(hours=23))
    assert store.purge_dead_letters() == 0
    clock.set(NOW + timedelta(days=1, minutes=1))
    assert store.purge_dead_letters() == 1
    assert kept(store) == []
    store.close()
    # The counts are the database's, not the process's.
    again = Store(tmp_path / "g.db", clock)
    assert again.dead_letter_counts() == DeadLetterCounts(kept=0, kept_bytes=0, purged=2)


def test_letters_stored_with_another_offset_are_aged_by_their_moment(tmp_path: Path) -> None:
    """Before, the receipt time was stored as given (any offset): compared as moments."""
    store = Store(tmp_path / "g.db", ManualClock(NOW), DeadLetterLimits(keep_days=1))
    for received in ("2026-11-22T09:30:00+01:00", "2026-11-22T09:30:00-01:00"):
        store.db.execute("INSERT INTO dead_letters (received, topic, error, size, payload) "
                         "VALUES (?, ?, 'old', 1, x'00')", [received, TOPIC])
    assert store.purge_dead_letters() == 1  # 08:30 UTC a day ago goes, 10:30 UTC stays
    assert [r[0] for r in store.db.execute("SELECT received FROM dead_letters")] == [
        "2026-11-22T09:30:00-01:00"]


def test_past_the_row_or_byte_limit_the_oldest_go_first(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db", ManualClock(NOW),
                  DeadLetterLimits(max_rows=5, max_mb=0.001))  # 1,000 bytes
    store.record([], [letter(i, NOW) for i in range(4)])
    store.record([], [letter(i, NOW) for i in range(4, 8)])
    assert kept(store) == ["00003", "00004", "00005", "00006", "00007"]
    store.record([], [letter(8, NOW, size=450), letter(9, NOW, size=450)])
    assert kept(store) == ["00007", "00008", "00009"]  # 100 + 450 + 450 bytes
    assert store.dead_letter_counts() == DeadLetterCounts(kept=3, kept_bytes=1000, purged=7)
    # A letter larger than the limit on its own is not kept at all, and counted.
    store.record([], [letter(10, NOW, size=1500)])
    assert kept(store) == [] and store.dead_letter_counts().purged == 11


def test_a_purge_that_fails_applies_nothing_and_the_batch_is_stored(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db", ManualClock(NOW), DeadLetterLimits(max_rows=3))
    store.record([], [letter(0, NOW - timedelta(days=40)), letter(1, NOW), letter(2, NOW)])
    assert kept(store) == ["00001", "00002"]
    # SQLite refuses the second deletion of the purge (a trigger on this connection): the
    # first one, of a letter past its days, must not stand alone.
    store.db.execute("UPDATE dead_letters SET received = ? WHERE seq = 2",
                     [(NOW - timedelta(days=40)).isoformat()])
    store.db.execute("CREATE TEMP TRIGGER refuse BEFORE DELETE ON dead_letters "
                     "WHEN old.seq = 3 BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    store.record([(position(1), NOW)], [letter(i, NOW) for i in (3, 4, 5)])
    assert store.count("positions") == 1  # the batch and its letters: committed before
    assert kept(store) == ["00001", "00002", "00003", "00004", "00005"]  # the purge: none
    store.db.execute("DROP TRIGGER refuse")
    assert store.purge_dead_letters() == 2  # the next one applies, whole
    assert kept(store) == ["00003", "00004", "00005"]
    assert store.dead_letter_counts().purged == 3
    # Called by itself (the daily purge), a failure is the caller's to see, and undone.
    store.db.execute("CREATE TEMP TRIGGER refuse BEFORE DELETE ON dead_letters "
                     "WHEN old.seq = 6 BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    store.db.execute("UPDATE dead_letters SET received = '2000-01-01T00:00:00+00:00'")
    with pytest.raises(sqlite3.IntegrityError, match="disk says no"):
        store.purge_dead_letters()
    assert kept(store) == ["00003", "00004", "00005"]


def test_the_shipped_config_documents_the_defaults() -> None:
    config = Path(__file__).resolve().parents[1] / "config" / "ground.toml"
    limits = load_ground(config).dead_letters
    assert limits == DeadLetterLimits()
    assert (limits.keep_days, limits.max_rows, limits.max_mb) == (30, 10_000, 50)
