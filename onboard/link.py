"""The MQTT link: drains the outbox to the broker and brings the day's plan and appointments back.

Rows leave the outbox only when the broker acknowledges them: paho reports each PUBACK to
`on_publish` with the message id (`mid`), and the sender thread maps mids back to outbox
rows. (paho's `MessageInfo` for a message queued while offline keeps an error code even
after delivery, so `wait_for_publish` cannot be trusted for this.)

Ordering and fairness: on every (re)connection the rows already waiting become the backlog,
sent oldest first in batches with a bounded number in flight; rows put after that are live
and go out one by one ahead of the backlog, so a long drain never hides where the bus is.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from medicobus import contract
from medicobus.clock import Clock, SystemClock
from medicobus.mqtt import BrokerSettings, describe_refusal, new_client
from onboard.outbox import Outbox, Row

log = logging.getLogger(__name__)

LIVE_PER_ROUND = 50


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
    ) -> None:
        self.settings = settings
        self.vehicle = vehicle
        self.outbox = outbox
        self.on_downlink = on_downlink
        self.clock = clock or SystemClock()
        self.batch_size = batch_size
        self.inflight_batches = inflight_batches
        self.connected = threading.Event()
        self.stats = {"sent": 0, "acked_rows": 0, "bad_downlinks": 0, "refusals": 0}
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
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
        self._acks.put(mid)

    def _on_message(self, client: mqtt.Client, userdata: Any,
                    message: mqtt.MQTTMessage) -> None:
        parsed: contract.Plan | contract.Appointments
        try:
            _, channel = contract.parse_topic(message.topic)
            payload = bytes(message.payload)
            parsed = (contract.parse_plan(payload) if channel is contract.Channel.PLAN
                      else contract.parse_appointments(payload))  # fmt: skip
            if parsed.vehicle != self.vehicle:
                raise contract.ContractError(f"it is for {parsed.vehicle!r}")
        except contract.ContractError as exc:
            self.stats["bad_downlinks"] += 1
            log.error("ignored a bad message on %s: %s", message.topic, exc)
            return
        self.on_downlink(parsed)

    # -- sender thread ---------------------------------------------------------------------

    def _send_loop(self) -> None:
        session = -1
        inflight: dict[int, list[int]] = {}  # mid -> outbox seqs
        batches_inflight: set[int] = set()
        live_cursor = backlog_cursor = backlog_end = 0
        while not self._stopping.is_set():
            if not self.connected.wait(timeout=0.5):
                continue
            if session != self._session:
                # New connection: what is waiting now is backlog; anything in flight before
                # is resent (the ground drops duplicates by message id).
                session = self._session
                inflight.clear()
                batches_inflight.clear()
                backlog_cursor, backlog_end = 0, self.outbox.last_seq()
                live_cursor = backlog_end
            self._settle(inflight, batches_inflight)

            sent = False
            for row in self.outbox.after(live_cursor, LIVE_PER_ROUND):
                mid = self._publish(self._channel(row.kind), row.payload.encode())
                if mid is None:
                    break
                inflight[mid] = [row.seq]
                live_cursor = row.seq
                sent = True
            while len(batches_inflight) < self.inflight_batches:
                rows = self.outbox.after(backlog_cursor, self.batch_size, upto=backlog_end)
                if not rows:
                    break
                mid = self._publish(contract.Channel.BATCH, self._batch(rows))
                if mid is None:
                    break
                inflight[mid] = [r.seq for r in rows]
                batches_inflight.add(mid)
                backlog_cursor = rows[-1].seq
                sent = True
            if not sent:
                self._wait_for_work(inflight)

    def _wait_for_work(self, inflight: dict[int, list[int]]) -> None:
        if inflight:
            with contextlib.suppress(queue.Empty):  # an ack frees a place: take it at once
                self._acks.put(self._acks.get(timeout=0.2))
        else:
            self.outbox.wait_for_rows(timeout=0.5)

    def _settle(self, inflight: dict[int, list[int]], batches: set[int]) -> None:
        done: list[int] = []
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                break
            seqs = inflight.pop(mid, None)
            batches.discard(mid)
            if seqs:  # an unknown mid is a late ack from a previous connection
                done.extend(seqs)
        if done:
            self.outbox.remove(done)
            self.stats["acked_rows"] += len(done)

    def _publish(self, channel: contract.Channel, payload: bytes) -> int | None:
        info = self.client.publish(contract.topic(self.vehicle, channel), payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            # Lost the connection between our check and the publish: paho would keep the
            # message in memory only; the outbox resends it after reconnecting.
            return None
        self.stats["sent"] += 1
        return info.mid

    def _batch(self, rows: list[Row]) -> bytes:
        # The stored payloads are already valid JSON items: splice rather than re-encode.
        head = contract.Batch.model_construct(
            vehicle=self.vehicle, ts=self.clock.now(), items=[]
        ).model_dump_json(exclude={"items"})
        return f'{head[:-1]},"items":[{",".join(r.payload for r in rows)}]}}'.encode()

    @staticmethod
    def _channel(kind: str) -> contract.Channel:
        return contract.Channel(kind)  # each item kind has the channel of the same name

    def _status(self, state: str, reason: str | None = None) -> bytes:
        return contract.Status(vehicle=self.vehicle, ts=self.clock.now(), state=state,  # type: ignore[arg-type]
                               reason=reason).to_json()
