"""Ingest: everything the buses publish, validated, stored once, applied to live state.

Messages are written in batches: each is validated against the contract, the batch is
stored in one go and only then acknowledged to the broker (manual acks on a persistent
session), so a ground that dies mid-batch gets the same messages again and loses nothing.
Under load paho's network thread writes each full batch itself; a small writer thread
picks up what a quiet moment leaves pending within a few milliseconds. Whatever cannot be used
(bad JSON, wrong schema, unknown vehicle, a vehicle writing as another) goes to the
dead-letter table; nothing stops the consuming.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt

from ground.state import LiveState
from ground.store import Message, Store
from medicobus import contract
from medicobus.clock import Clock
from medicobus.mqtt import BrokerSettings, describe_refusal, new_client

log = logging.getLogger(__name__)

BATCH_MAX = 500  # written by the network thread itself once this many are pending
BATCH_WAIT_S = 0.005  # what arrives in a quiet moment waits at most this long


class Received(NamedTuple):  # made on the network thread for every message: keep it cheap
    topic: str
    payload: bytes
    mid: int
    qos: int
    session: int
    at: datetime


class Ingest:
    def __init__(self, settings: BrokerSettings, store: Store, state: LiveState,
                 vehicles: set[str], on_change: Callable[[set[str]], None], clock: Clock,
                 client_id: str = "medicobus-ground",
                 on_connected: Callable[[], None] | None = None,
                 on_stored: Callable[[list[Message]], None] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.state = state
        self.vehicles = vehicles
        self.on_change = on_change
        self.on_connected = on_connected
        self.on_stored = on_stored  # e.g. the InfluxDB export: only what was new
        self.clock = clock
        self.stats = {"received": 0, "stored": 0, "duplicates": 0, "dead_letters": 0}
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # the broker confirmed: nothing is missed now
        self._pending: list[Received] = []  # received, not yet written
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one batch written at a time, in order
        self._session = 0
        self._stopping = threading.Event()
        self._writer: threading.Thread | None = None
        self.client = new_client(settings, client_id, persistent=True, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self.subscribed.set()

    def start(self) -> None:
        self._writer = threading.Thread(target=self._write_loop, name="ingest", daemon=True)
        self._writer.start()
        self.client.connect_async(self.settings.host, self.settings.port,
                                  keepalive=self.settings.keepalive_s)
        self.client.loop_start()

    def stop(self) -> None:
        # What is queued but not yet written is not acknowledged: the broker redelivers it.
        self._stopping.set()
        self.client.disconnect()
        self.client.loop_stop()
        if self._writer:
            self._writer.join(timeout=10)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                    reason: mqtt.ReasonCode, properties: Any) -> None:
        if reason.is_failure:
            log.error("%s", describe_refusal(reason))
            return
        self._session += 1
        client.subscribe(contract.uplink_subscription(), qos=1)
        self.connected.set()
        if self.on_connected:
            self.on_connected()
        log.info("ingest connected to %s:%d", self.settings.host, self.settings.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       reason: mqtt.ReasonCode, properties: Any) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if not self._stopping.is_set():
            log.warning("ingest disconnected (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._pending_lock:
            self._pending.append(Received(msg.topic, bytes(msg.payload), msg.mid, msg.qos,
                                          self._session, self.clock.now()))
            full = len(self._pending) >= BATCH_MAX
        if full:
            # Under load, the network thread writes full batches itself: no hand-off to
            # another thread per batch, no fight for the interpreter lock with it.
            self._flush(retry=False)

    # -- batches ---------------------------------------------------------------------------

    def _write_loop(self) -> None:
        """Write what a quiet moment left pending (a few messages, a lone live fix), and
        retry a batch the store refused."""
        while not self._stopping.is_set():
            time.sleep(BATCH_WAIT_S)
            self._flush(retry=True)

    def _flush(self, retry: bool) -> None:
        with self._flush_lock:
            with self._pending_lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            while not self._write(batch):
                if self._stopping.is_set():
                    return  # not acknowledged: the broker keeps them for next time
                if not retry:  # not on the network thread: give it back to the writer
                    with self._pending_lock:
                        self._pending[:0] = batch
                    return
                time.sleep(1.0)
            for r in batch:
                # A message from an earlier connection is redelivered by the broker on
                # this one; acknowledging its old id here could ack something else.
                if r.qos > 0 and r.session == self._session:
                    self.client.ack(r.mid, r.qos)

    def _write(self, batch: list[Received]) -> bool:
        """Validate, store and apply one batch; False if the store failed (retry it)."""
        messages: list[tuple[Message, datetime]] = []
        dead: list[tuple[str, bytes, str, datetime]] = []
        for r in batch:
            try:
                messages.extend((m, r.at) for m in self._decode(r))
            except contract.ContractError as exc:
                dead.append((r.topic, r.payload, str(exc), r.at))
            except Exception as exc:  # never let one message stop the ingest
                log.exception("unexpected error decoding a message on %s", r.topic)
                dead.append((r.topic, r.payload, f"internal error: {exc!r}", r.at))
        try:
            fresh = self.store.record(messages)
            if dead:
                self.store.dead_letter(dead)
            if self.on_stored and fresh:
                self.on_stored([m for m, _ in fresh])
        except Exception:
            log.exception("store failed; %d messages not acknowledged, retrying", len(batch))
            return False
        for topic, _, error, _ in dead:
            log.warning("dead letter on %s: %s", topic, error)
        changed: set[str] = set()
        # A status is state, not history: apply it even when seen before (a Last Will
        # keeps one id for the life of the bus's process; a retained one comes back).
        new = {m.id for m, _ in fresh}
        for message, received in messages:
            if isinstance(message, contract.Status) or message.id in new:
                new.discard(message.id)
                self.state.apply(message, received)
                changed.add(message.vehicle)
        self.stats["received"] += len(batch)
        self.stats["stored"] += len(fresh)
        self.stats["duplicates"] += len(messages) - len(fresh)
        self.stats["dead_letters"] += len(dead)
        if changed:
            try:
                self.on_change(changed)
            except Exception:
                log.exception("a change listener failed")
        return True

    def _decode(self, r: Received) -> list[Message]:
        vehicle, channel = contract.parse_topic(r.topic)
        if channel in contract.DOWNLINK_CHANNELS:
            return []  # our own retained messages, echoed back by the wildcard subscription
        if vehicle not in self.vehicles:
            raise contract.ContractError(f"unknown vehicle {vehicle!r}")
        message = contract.parse_uplink(r.payload)
        if message.kind != channel.value:
            raise contract.ContractError(f"a {message.kind} message on the {channel} topic")
        items: list[Message] = (
            list(message.items) if isinstance(message, contract.Batch) else [message]
        )
        for item in items:
            if item.vehicle != vehicle:
                raise contract.ContractError(
                    f"payload says vehicle {item.vehicle!r} on {vehicle!r}'s topic"
                )
        return items
