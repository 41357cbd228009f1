"""The ground's pipeline: what happens to every batch the buses send, one step after the
other in the order the data flows (as Traccar lists its position handlers):

    decode → dedupe → store → live state → exports → alerts → board → pages

It runs on the consumer's worker (ground/ingest.py), never on the MQTT network thread, and
a test can drive it without MQTT. A message that makes a step raise is set aside as a dead
letter naming the step and the error; the rest of its batch and what comes after go on.
Only a store that cannot take writes stops a batch (`StoreUnavailable`): the consumer
keeps it unacknowledged and tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from ground.state import LiveState
from ground.store import DeadLetter, Message, Store, StoreUnavailable
from ground.timebounds import TimeBounds
from medicobus import contract

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Arrived:
    """One message as the broker delivered it."""

    topic: str
    payload: bytes
    at: datetime  # when the ground received it


@dataclass
class Outcome:
    """What one batch did: counts, and the vehicles whose state changed."""

    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    changed: set[str] = field(default_factory=set)
    # Each message's own id (a batch's, not its items'), in the batch's order; None where it
    # could not be read: what the consumer tells the bus it committed.
    ids: list[str | None] = field(default_factory=list)


class Alerts(Protocol):
    def evaluate(self, vehicles: set[str] | None = None) -> Sequence[_Judged]: ...


class _Judged(Protocol):
    @property
    def vehicle(self) -> str: ...


class Board(Protocol):
    def notify(self, vehicles: set[str]) -> None: ...


Item = tuple[Message, Arrived]
Export = Callable[[list[Message]], None]


class Pipeline:
    def __init__(self, store: Store, state: LiveState, vehicles: set[str], *,
                 exports: Sequence[Export] = (), alerts: Alerts | None = None,
                 board: Board | None = None, bounds: TimeBounds | None = None) -> None:
        self.store = store
        self.state = state
        self.vehicles = vehicles
        self.exports = list(exports)
        self.alerts = alerts
        self.board = board
        self.bounds = bounds or TimeBounds()
        self.stats = {"received": 0, "stored": 0, "duplicates": 0, "dead_letters": 0,
                      "off_clock": 0, "step_errors": 0}  # fmt: skip

    def run(self, batch: Sequence[Arrived]) -> Outcome:
        """Take one batch down the pipeline; raises StoreUnavailable to have it retried."""
        items, dead, ids = self.decode(batch)
        unseen = self.dedupe(items)
        fresh = self.keep(unseen, dead)
        changed = self.apply(items, fresh, dead)
        self.export(fresh)
        changed |= self.judge(changed)
        self.show(changed)
        outcome = Outcome(stored=len(fresh), dead_letters=len(dead),
                          duplicates=len(items) - len(unseen), changed=changed, ids=ids)
        for key, value in (("received", len(batch)), ("stored", outcome.stored),
                           ("duplicates", outcome.duplicates),
                           ("dead_letters", outcome.dead_letters)):  # fmt: skip
            self.stats[key] += value
        return outcome

    # -- the steps, in order ------------------------------------------------------------------

    def decode(self, batch: Sequence[Arrived]
               ) -> tuple[list[Item], list[_Dead], list[str | None]]:
        """Validate each message against the contract; what cannot be used is set aside.
        Also each message's own id, where it could be read."""
        items: list[Item] = []
        dead: list[_Dead] = []
        ids: list[str | None] = []
        for arrived in batch:
            ids.append(None)
            try:
                good, refused = self._decode(arrived, ids)
                items.extend((m, arrived) for m in good)
                dead.extend(refused)
            except _OffClock as exc:
                dead.append(_Dead(arrived, arrived.payload, str(exc), exc.off))
            except contract.ContractError as exc:
                dead.append(_Dead(arrived, arrived.payload, str(exc)))
            except Exception as exc:  # never let one message stop the ingest
                log.exception("unexpected error decoding a message on %s", arrived.topic)
                dead.append(_Dead(arrived, arrived.payload, f"decode: {exc!r}"))
        return items, dead, ids

    def dedupe(self, items: list[Item]) -> list[Item]:
        """Only what the store has not seen, once (a resend, a backlog drained twice)."""
        known = self.store.known([m for m, _ in items])
        fresh: list[Item] = []
        for item in items:
            if item[0].id not in known:
                known.add(item[0].id)
                fresh.append(item)
        return fresh

    def keep(self, fresh: list[Item], dead: list[_Dead]) -> list[Item]:
        """Store the batch and its dead letters in one go; what makes the store raise is
        found out item by item and set aside, so it cannot hold back the others."""
        try:
            self.store.record(_rows(fresh), [d.letter() for d in dead])
            return fresh
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("store refused a batch of %d; trying item by item", len(fresh))
        kept: list[Item] = []
        for item in fresh:
            try:
                self.store.record(_rows([item]))
                kept.append(item)
            except StoreUnavailable:
                raise  # kept ones are stored: the retry skips them as duplicates
            except Exception as exc:
                dead.append(_Dead(item[1], item[0].to_json(), f"store: {exc!r}"))
        self.store.record([], [d.letter() for d in dead])
        return kept

    def apply(self, items: list[Item], fresh: list[Item], dead: list[_Dead]) -> set[str]:
        """Live state. A status is state, not history: applied even when seen before (a Last
        Will keeps one id for the life of the bus's process; a retained one comes back).
        What was set aside for its time is noted, for the dashboard to say whose clock is off."""
        new = {m.id for m, _ in fresh}
        changed: set[str] = set()
        for letter in dead:
            if letter.off is not None:
                vehicle, off = letter.off
                self.state.note_off_clock(vehicle, off, letter.arrived.at)
                self.stats["off_clock"] += 1
                changed.add(vehicle)
        refused: list[_Dead] = []
        for message, arrived in items:
            if not (isinstance(message, contract.Status) or message.id in new):
                continue
            new.discard(message.id)
            try:
                self.state.apply(message, arrived.at)
                changed.add(message.vehicle)
            except Exception as exc:
                log.exception("live state refused %s %s", message.kind, message.id)
                refused.append(_Dead(arrived, message.to_json(), f"live state: {exc!r}"))
        if refused:
            self._set_aside(refused)
        return changed

    def export(self, fresh: list[Item]) -> None:
        """Hand what is new to the exports (InfluxDB), which keep their own durable spool."""
        if not fresh:
            return
        messages = [m for m, _ in fresh]
        for export in self.exports:
            self._guard("export", export, messages)

    def judge(self, changed: set[str]) -> set[str]:
        """Alerts on the new state; returns the vehicles whose alerts opened or closed."""
        if self.alerts is None or not changed:
            return set()
        judged = self._guard("alerts", self.alerts.evaluate, changed)
        return {a.vehicle for a in judged or ()}

    def show(self, changed: set[str]) -> None:
        """Once per batch: the board works out which communes' pages to wake."""
        if self.board is not None and changed:
            self._guard("board", self.board.notify, changed)

    # -- helpers -----------------------------------------------------------------------------

    def _decode(self, arrived: Arrived, ids: list[str | None]
                ) -> tuple[list[Message], list[_Dead]]:
        """The valid items a message carries, and each item of a batch the contract, the
        topic it came on or its time refuses: one bad item does not refuse the others. What
        is wrong with the message as a whole raises ContractError. Its id, once read, is
        the last of `ids`."""
        vehicle, channel = contract.parse_topic(arrived.topic)
        if channel in contract.DOWNLINK_CHANNELS:
            return [], []  # our own retained messages, echoed back by the wildcard subscription
        if vehicle not in self.vehicles:
            raise contract.ContractError(f"unknown vehicle {vehicle!r}")
        uplinked = contract.parse_uplink_items(arrived.payload)
        ids[-1] = uplinked.id
        if uplinked.kind != channel.value:
            raise contract.ContractError(f"a {uplinked.kind} message on the {channel} topic")
        good: list[Message] = []
        refused = [_Dead(arrived, r.payload, r.error) for r in uplinked.refused]
        single = uplinked.kind != "batch"
        for item in uplinked.items:
            off: tuple[str, timedelta] | None = None
            if item.vehicle != vehicle:
                error = f"payload says vehicle {item.vehicle!r} on {vehicle!r}'s topic"
            elif (late := self.bounds.judge(item, arrived.at)) is not None:
                error, off = late, (vehicle, item.ts - arrived.at)
            elif (odd := self.bounds.judge_forecasts(item, arrived.at)) is not None:
                error = odd
            else:
                good.append(item)
                continue
            if single:
                raise _OffClock(error, off) if off else contract.ContractError(error)
            refused.append(_Dead(arrived, item.to_json(), f"item {item.id}: {error}", off))
        return good, refused

    def _set_aside(self, dead: list[_Dead]) -> None:
        try:
            self.store.record([], [d.letter() for d in dead])
            self.stats["dead_letters"] += len(dead)
        except Exception:
            log.exception("%d dead letters could not be stored", len(dead))

    def _guard(self, step: str, call: Callable[[T], R], arg: T) -> R | None:
        """A step that is not about one message (exports, alerts, the board) fails alone:
        logged and counted, the next batch tries again."""
        try:
            return call(arg)
        except Exception:
            self.stats["step_errors"] += 1
            log.exception("pipeline step %s failed", step)
            return None


@dataclass(frozen=True)
class _Dead:
    arrived: Arrived
    payload: bytes  # the message as received, or the one item of it that was refused
    error: str
    off: tuple[str, timedelta] | None = None  # set aside for its time: whose clock, how far


    def letter(self) -> DeadLetter:
        return DeadLetter(self.arrived.topic, self.payload, self.error, self.arrived.at)


class _OffClock(contract.ContractError):
    """A single message whose time is outside the window (a batch sets its items aside)."""

    def __init__(self, error: str, off: tuple[str, timedelta]) -> None:
        super().__init__(error)
        self.off = off


def _rows(items: list[Item]) -> list[tuple[Message, datetime]]:
    return [(m, arrived.at) for m, arrived in items]
