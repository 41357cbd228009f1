"""The MQTT link: drains the outbox to the broker and brings the day's plan, appointments
and the ground's acknowledgements back.

Rows leave the outbox only when the ground says it has committed them (contract.Ack, on the
vehicle's `ack` topic), never on the broker's PUBACK alone: a Mosquitto that crashes loses
the messages it acknowledged since its last save. A message is in flight until its PUBACK
(paho reports it to `on_publish` by `mid`; paho's `MessageInfo` for a message queued while
offline keeps an error code even after delivery, so `wait_for_publish` cannot be trusted),
then awaits the ground's ack, which names it by its id (a batch by the batch's id). What is
still unacknowledged is sent again on every (re)connection, and when the ground has been
silent for `ack_timeout_s` while rows awaited it; that wait then doubles (up to
MAX_ACK_TIMEOUT_S) until the ground is heard again, so a ground down for hours costs a few
resends, not one a minute. The ground drops what it has already stored, by message id.

Ordering and fairness: on every (re)connection the rows already waiting become the backlog,
sent oldest first in batches with a bounded number in flight; rows put after that are live
and go out ahead of the backlog, so a long drain never hides where the bus is: one by one,
LIVE_INFLIGHT at most awaiting their PUBACK, and what was put meanwhile in one batch (a link
with seconds of latency carries only a few messages per round trip).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from medicobus import contract
from medicobus.clock import Clock, SystemClock
from medicobus.mqtt import BrokerSettings, describe_refusal, new_client
from onboard.outbox import Outbox, Row

log = logging.getLogger(__name__)

# Live messages awaiting their PUBACK at most: what is put meanwhile waits in the outbox and
# goes as one batch when a place frees, so live data never queues in paho's memory behind
# more than this (a slow link carries few messages per round trip; paho lets 20 in flight).
LIVE_INFLIGHT = 4
MAX_ACK_TIMEOUT_S = 3600.0


class Link:
    def __init__(
        self,
        settings: BrokerSettings,
        vehicle: str,
        outbox: Outbox,
        on_downlink: Callable[[contract.Plan | contract.Appointments], None],
        *,
        clock: Clock | None = None,
        batch_size: int = 200,
        inflight_batches: int = 8,
        ack_timeout_s: float = 60.0,
    ) -> None:
        self.settings = settings
        self.vehicle = vehicle
        self.outbox = outbox
        self.on_downlink = on_downlink
        self.clock = clock or SystemClock()
        self.batch_size = batch_size
        self.inflight_batches = inflight_batches
        self.ack_timeout_s = ack_timeout_s
        self.connected = threading.Event()
        # acked_rows: deleted on the ground's ack; broker_acked_rows: PUBACKed (resends count
        # again); resends: rounds started because the ground was silent too long.
        self.stats = {"sent": 0, "acked_rows": 0, "broker_acked_rows": 0, "resends": 0,
                      "bad_downlinks": 0, "refusals": 0}  # fmt: skip
        # PUBACKs (a mid) and the ground's acks (message ids), in the order they arrived.
        self._events: queue.SimpleQueue[int | tuple[str, ...]] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._session = 0  # bumped on every connection; the sender resets its cursors
        self._thread: threading.Thread | None = None

        self.client = new_client(settings, f"medicobus-{vehicle}", persistent=False)
        self.client.will_set(
            contract.topic(vehicle, contract.Channel.STATUS),
            self._status("offline", "connection lost"),
            qos=1,
            retain=True,
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.client.connect_async(self.settings.host, self.settings.port,
                                  keepalive=self.settings.keepalive_s)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._send_loop, name="link", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Say goodbye (retained offline status) and close."""
        self._stopping.set()
        if self.connected.is_set():
            info = self.client.publish(contract.topic(self.vehicle, contract.Channel.STATUS),
                                       self._status("offline", "stopped"), qos=1, retain=True)
            info.wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()
        if self._thread:
            self._thread.join(timeout=5)

    # -- paho callbacks (network thread) ----------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                    reason: mqtt.ReasonCode, properties: Any) -> None:
        if reason.is_failure:
            self.stats["refusals"] += 1
            log.error("%s (broker %s:%d, user %r)", describe_refusal(reason),
                      self.settings.host, self.settings.port, self.settings.username)
            return
        log.info("connected to broker %s:%d", self.settings.host, self.settings.port)
        client.publish(contract.topic(self.vehicle, contract.Channel.STATUS),
                       self._status("online"), qos=1, retain=True)
        client.subscribe([(contract.topic(self.vehicle, c), 1) for c in contract.DOWNLINK_CHANNELS])
        self._session += 1
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       reason: mqtt.ReasonCode, properties: Any) -> None:
        if self.connected.is_set() and not self._stopping.is_set():
            log.warning("disconnected from broker (%s); will reconnect", reason)
        self.connected.clear()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int,
                    reason: mqtt.ReasonCode, properties: Any) -> None:
        self._events.put(mid)

    def _on_message(self, client: mqtt.Client, userdata: Any,
                    message: mqtt.MQTTMessage) -> None:
        parsed: contract.Plan | contract.Appointments | contract.Ack
        try:
            _, channel = contract.parse_topic(message.topic)
            payload = bytes(message.payload)
            if channel is contract.Channel.ACK:
                parsed = contract.parse_ack(payload)
            elif channel is contract.Channel.PLAN:
                parsed = contract.parse_plan(payload)
            else:
                parsed = contract.parse_appointments(payload)
            if parsed.vehicle != self.vehicle:
                raise contract.ContractError(f"it is for {parsed.vehicle!r}")
        except contract.ContractError as exc:
            self.stats["bad_downlinks"] += 1
            log.error("ignored a bad message on %s: %s", message.topic, exc)
            return
        if isinstance(parsed, contract.Ack):
            self._events.put(tuple(parsed.ids))  # the sender thread deletes the rows
        else:
            self.on_downlink(parsed)

    # -- sender thread ---------------------------------------------------------------------

    def _send_loop(self) -> None:
        session = -1
        window = _Window(self.ack_timeout_s)
        live_cursor = backlog_cursor = backlog_end = 0
        while not self._stopping.is_set():
            if not self.connected.wait(timeout=0.5):
                continue
            self._settle(window)
            timed_out = session == self._session and window.timed_out(time.monotonic())
            if session != self._session or timed_out:
                # A new connection, or a ground silent too long: what is waiting now is
                # backlog, all of it sent again (the ground drops duplicates by message id).
                if timed_out:
                    self.stats["resends"] += 1
                    log.warning("no acknowledgement from the ground for a while: sending "
                                "the %d rows of the outbox again", self.outbox.count())
                session = self._session
                window.restart()
                backlog_cursor, backlog_end = 0, self.outbox.last_seq()
                live_cursor = backlog_end

            sent = False
            while len(window.live) < LIVE_INFLIGHT:
                rows = self.outbox.after(live_cursor, self.batch_size)
                if not rows:
                    break
                if len(rows) == 1:
                    message_id = rows[0].id
                    mid = self._publish(self._channel(rows[0].kind), rows[0].payload.encode())
                else:  # put faster than the link's round trips carry them one by one
                    message_id = contract.new_id()
                    mid = self._publish(contract.Channel.BATCH, self._batch(message_id, rows))
                if mid is None:
                    break
                window.sent(mid, message_id, [r.seq for r in rows], live=True)
                live_cursor = rows[-1].seq
                sent = True
            while len(window.batches) < self.inflight_batches:
                rows = self.outbox.after(backlog_cursor, self.batch_size, upto=backlog_end)
                if not rows:
                    break
                batch_id = contract.new_id()
                mid = self._publish(contract.Channel.BATCH, self._batch(batch_id, rows))
                if mid is None:
                    break
                window.sent(mid, batch_id, [r.seq for r in rows], live=False)
                backlog_cursor = rows[-1].seq
                sent = True
            if not sent:
                self._wait_for_work(window)

    def _wait_for_work(self, window: _Window) -> None:
        if window.mids:
            self._settle(window, wait_s=0.2)  # a PUBACK frees a place: take it at once
        else:
            self.outbox.wait_for_rows(timeout=0.5)

    def _settle(self, window: _Window, wait_s: float = 0.0) -> None:
        """Take the PUBACKs and the ground's acks that arrived, in that order, waiting up
        to `wait_s` for the first."""
        done: list[int] = []
        block = wait_s > 0
        while True:
            try:
                event = self._events.get(block, wait_s)
            except queue.Empty:
                break
            block = False
            now = time.monotonic()
            if isinstance(event, int):
                self.stats["broker_acked_rows"] += window.broker_acked(event, now)
            else:
                done.extend(window.ground_acked(event, now))
        if done:
            self.stats["acked_rows"] += self.outbox.remove(done)

    def _publish(self, channel: contract.Channel, payload: bytes) -> int | None:
        info = self.client.publish(contract.topic(self.vehicle, channel), payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            # Lost the connection between our check and the publish: paho would keep the
            # message in memory only; the outbox resends it after reconnecting.
            return None
        self.stats["sent"] += 1
        return info.mid

    def _batch(self, batch_id: str, rows: list[Row]) -> bytes:
        # The stored payloads are already valid JSON items: splice rather than re-encode.
        head = contract.Batch.model_construct(
            id=batch_id, vehicle=self.vehicle, ts=self.clock.now(), items=[]
        ).model_dump_json(exclude={"items"})
        return f'{head[:-1]},"items":[{",".join(r.payload for r in rows)}]}}'.encode()

    @staticmethod
    def _channel(kind: str) -> contract.Channel:
        return contract.Channel(kind)  # each item kind has the channel of the same name

    def _status(self, state: str, reason: str | None = None) -> bytes:
        return contract.Status(vehicle=self.vehicle, ts=self.clock.now(), state=state,  # type: ignore[arg-type]
                               reason=reason).to_json()


class _Window:
    """What the link sent on this connection and the ground has not acknowledged: each MQTT
    message by its id with its outbox rows, in flight until the broker's PUBACK, then
    awaiting the ground's ack. Used by the sender thread only."""

    def __init__(self, ack_timeout_s: float) -> None:
        self.base_timeout_s = ack_timeout_s
        self.timeout_s = ack_timeout_s  # doubles while the ground stays silent
        self.restart()

    def restart(self) -> None:
        self.rows: dict[str, list[int]] = {}  # message id -> outbox seqs
        self.mids: dict[int, str] = {}  # in flight: mid -> message id
        self.batches: set[int] = set()  # the mids of backlog batches in flight
        self.live: set[int] = set()  # the mids of live messages in flight
        self.heard_at: float | None = None  # the ground's last sign, while rows await it

    def sent(self, mid: int, message_id: str, seqs: list[int], *, live: bool) -> None:
        self.rows[message_id] = seqs
        self.mids[mid] = message_id
        (self.live if live else self.batches).add(mid)

    def broker_acked(self, mid: int, now: float) -> int:
        """The broker has the message; returns how many rows it carries (0 if the mid is
        a late PUBACK from before a restart, or the ground's ack came first)."""
        self.batches.discard(mid)
        self.live.discard(mid)
        message_id = self.mids.pop(mid, None)
        seqs = None if message_id is None else self.rows.get(message_id)
        if seqs is None:
            return 0
        if self.heard_at is None:
            self.heard_at = now  # the ground's silence counts from here
        return len(seqs)

    def ground_acked(self, ids: tuple[str, ...], now: float) -> list[int]:
        """The rows the ground has committed (ids not sent on this connection: none)."""
        seqs = [seq for i in ids for seq in self.rows.pop(i, ())]
        self.heard_at = now if self.rows else None
        self.timeout_s = self.base_timeout_s
        return seqs

    def timed_out(self, now: float) -> bool:
        """Whether rows have awaited a silent ground for the timeout, which then doubles."""
        if self.heard_at is None or now - self.heard_at < self.timeout_s:
            return False
        self.timeout_s = min(2 * self.timeout_s, MAX_ACK_TIMEOUT_S)
        return True
