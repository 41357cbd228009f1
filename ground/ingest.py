"""The MQTT consumer: receives what the buses publish, hands it to the pipeline, and
acknowledges it only once the pipeline has committed it.

paho's network thread only receives: each message is queued with its delivery details.
One worker takes everything queued in one go (a batch grows by itself under load) down
the pipeline (ground/pipeline.py), then acknowledges the batch (manual acks on a
persistent session), so a ground that dies mid-batch gets the same messages again and
loses nothing; a store that cannot commit keeps the batch unacknowledged and retried.

Each bus is told, once per batch, which of its messages are committed (contract.Ack on its
`ack` topic): all of them, whether stored, skipped as already stored or kept as dead
letters, or the bus would send them again forever. Only then does the bus delete them from
its outbox. The buses' acks go out before the broker's, so a ground that dies in between
gets the messages again and tells the buses again, never the other way round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from pydantic import BaseModel, ValidationError

from ground.pipeline import Arrived, Pipeline
from ground.store import StoreUnavailable
from medicobus import contract
from medicobus.clock import Clock
from medicobus.mqtt import BrokerSettings, describe_refusal, new_client

log = logging.getLogger(__name__)

BATCH_MAX = 500  # messages taken down the pipeline in one go at most
BATCH_WAIT_S = 0.02  # under a stream, how long a batch may wait to fill (not when quiet)
RETRY_S = 1.0  # after the store refused a batch
# What a bus's outbox sends, and so waits for the ground's ack (not its status: state,
# retained, and its Last Will; not the downlink the wildcard subscription echoes back).
FROM_OUTBOX = frozenset(contract.UPLINK_CHANNELS) - {contract.Channel.STATUS}


class Received(NamedTuple):  # made on the network thread for every message: keep it cheap
    topic: str
    payload: bytes
    mid: int
    qos: int
    session: int
    at: datetime


class Ingest:
    def __init__(self, settings: BrokerSettings, pipeline: Pipeline, clock: Clock,
                 client_id: str = "medicobus-ground",
                 on_connected: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.stats = pipeline.stats
        self.on_connected = on_connected
        self.clock = clock
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # the broker confirmed: nothing is missed now
        self._pending: list[Received] = []  # received, not yet taken by the worker
        self._arrived = threading.Condition()
        self._acks: list[Received] = []  # committed, to acknowledge
        self._told: list[contract.Ack] = []  # committed, to tell the buses
        self._acks_lock = threading.Lock()
        self._session = 0
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self.client = new_client(settings, client_id, persistent=True, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self.subscribed.set()

    def start(self) -> None:
        self._worker = threading.Thread(target=self._work, name="pipeline", daemon=True)
        self._worker.start()
        self.client.connect_async(self.settings.host, self.settings.port,
                                  keepalive=self.settings.keepalive_s)
        self.client.loop_start()

    def stop(self) -> None:
        # What is queued but not yet committed is not acknowledged: the broker redelivers it.
        self._stopping.set()
        with self._arrived:
            self._arrived.notify()
        self.client.disconnect()
        self.client.loop_stop()
        if self._worker:
            self._worker.join(timeout=10)

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
        received = Received(msg.topic, bytes(msg.payload), msg.mid, msg.qos, self._session,
                            self.clock.now())
        with self._arrived:
            self._pending.append(received)
            if len(self._pending) in (1, BATCH_MAX):  # the worker waits for the first, or
                self._arrived.notify()  # for a full batch
        self._send_acks()  # what the worker committed meanwhile, from the network thread

    # -- the worker ----------------------------------------------------------------------------

    def _work(self) -> None:
        streaming = False  # messages came while the last batch went down the pipeline
        while not self._stopping.is_set():
            with self._arrived:
                while not self._pending and not self._stopping.is_set():
                    self._arrived.wait()
                if streaming:  # let the batch fill a little: fewer commits, each synced
                    deadline = time.monotonic() + BATCH_WAIT_S
                    while len(self._pending) < BATCH_MAX and not self._stopping.is_set():
                        left = deadline - time.monotonic()
                        if left <= 0 or not self._arrived.wait(left):
                            break
                batch = self._pending[:BATCH_MAX]
                del self._pending[:BATCH_MAX]
            if batch:
                self._take(batch)
            with self._arrived:
                streaming = bool(self._pending)

    def _take(self, batch: list[Received]) -> None:
        arrived = [Arrived(r.topic, r.payload, r.at) for r in batch]
        while True:
            try:
                outcome = self.pipeline.run(arrived)
                break
            except StoreUnavailable:
                log.exception("%d messages not acknowledged; retrying", len(batch))
            except Exception:  # a bug in the pipeline: nothing is acknowledged, nothing lost
                log.exception("the pipeline failed on %d messages; retrying", len(batch))
            if self._stopping.wait(RETRY_S):
                return  # not acknowledged: the broker keeps them for next time
        told = committed(batch, outcome.ids)
        with self._acks_lock:
            self._told.extend(told)
            self._acks.extend(batch)
        with self._arrived:
            busy = bool(self._pending)
        # Under load, more messages are coming: the network thread sends these acks with its
        # next one (each ack is a write to a socket; from this thread, every one of them
        # hands the interpreter lock to the network thread and waits to get it back). In a
        # quiet moment, or when the broker waits for acks before it sends more, nothing
        # else is coming and this thread sends them.
        if not busy:
            self._send_acks()

    def _send_acks(self) -> None:
        with self._acks_lock:
            done, self._acks = self._acks, []
            told, self._told = self._told, []
        for ack in told:  # not retained: a bus missing one sends the messages again
            self.client.publish(contract.topic(ack.vehicle, contract.Channel.ACK),
                                ack.to_json(), qos=1)
        for r in done:
            # A message from an earlier connection is redelivered by the broker on this
            # one; acknowledging its old id here could ack something else.
            if r.qos > 0 and r.session == self._session:
                self.client.ack(r.mid, r.qos)


class _Identified(BaseModel):
    """A message's id, whatever else it holds or lacks (a dead letter has one too)."""

    id: contract.MessageId


def committed(batch: list[Received], read: Sequence[str | None] = ()) -> list[contract.Ack]:
    """What each bus is told of a committed batch: its messages, by id (a batch by the
    batch's id), each once, in acks of at most MAX_BATCH_ITEMS ids. `read`: the ids the
    pipeline read already, in the batch's order (None: read here, e.g. a dead letter's)."""
    ids: dict[str, dict[str, None]] = {}  # vehicle -> ids, in order, once
    for i, r in enumerate(batch):
        try:
            vehicle, channel = contract.parse_topic(r.topic)
            if channel not in FROM_OUTBOX:
                continue
            message_id = (read[i] if i < len(read) else None) \
                or _Identified.model_validate_json(r.payload).id
        except (contract.ContractError, ValidationError):
            continue  # no id: nothing on a bus waits for it (it is a dead letter)
        ids.setdefault(vehicle, {})[message_id] = None
    acks: list[contract.Ack] = []
    size = contract.MAX_BATCH_ITEMS
    for vehicle, listed in ids.items():
        every = list(listed)
        try:
            acks += [contract.Ack(vehicle=vehicle, ids=every[i:i + size])
                     for i in range(0, len(every), size)]
        except ValidationError:
            continue  # a topic no bus can have (the name is not a vehicle id): a dead letter
    return acks
