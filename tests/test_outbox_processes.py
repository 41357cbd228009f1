"""The outbox shared by two processes, as on the bus: the agent (positions; its link
drains to a real Mosquitto) and the kiosk (tickets, in tests/kiosk_writer.py). Each counts
the other's rows, every row reaches the broker once, and a row the kiosk puts while the
link is idle leaves at once, not at the link's next poll. The receiver acknowledges what it
gets as the ground does (contract.Ack), so that the link deletes the rows."""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from medicobus import contract
from medicobus.brokers import Mosquitto
from medicobus.mqtt import BrokerSettings, new_client
from onboard.link import Link
from onboard.outbox import Outbox
from tests.harness import VEHICLE, position, wait_until

ROOT = Path(__file__).resolve().parents[1]


class Kiosk:
    """The kiosk process, told what to put."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.kiosk_writer", str(path)], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(10) == 0


class Receiver:
    """What reaches the broker for the bus: each item's id and when it arrived; each
    message acknowledged at once, by its id, as the ground does once it has committed."""

    def __init__(self, port: int) -> None:
        self.arrivals: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self.client = new_client(BrokerSettings(port=port), "test-receiver", persistent=False)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(
            contract.topic(VEHICLE, contract.Channel.BATCH).rsplit("/", 1)[0] + "/+", qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        at = time.monotonic()
        if contract.parse_topic(msg.topic)[1] in contract.DOWNLINK_CHANNELS:
            return  # its own acks, back through the wildcard
        message = contract.parse_uplink(bytes(msg.payload))
        if isinstance(message, contract.Status):
            return
        items = message.items if isinstance(message, contract.Batch) else [message]
        with self._lock:
            self.arrivals += [(m.id, at) for m in items]
        client.publish(contract.topic(VEHICLE, contract.Channel.ACK),
                       contract.Ack(vehicle=VEHICLE, ids=[message.id]).to_json(), qos=1)

    def ids(self) -> list[str]:
        with self._lock:
            return [i for i, _ in self.arrivals]

    def arrived(self, item: str) -> float | None:
        with self._lock:
            return next((at for i, at in self.arrivals if i == item), None)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def receiver(mosquitto: Mosquitto) -> Iterator[Receiver]:
    r = Receiver(mosquitto.port)
    yield r
    r.close()


def _feed(outbox: Outbox, first: int, count: int) -> threading.Thread:
    def run() -> None:
        for i in range(first, first + count):
            outbox.put(position(i))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_agent_and_kiosk_write_while_the_link_drains(
        tmp_path: Path, mosquitto: Mosquitto, receiver: Receiver) -> None:
    path = tmp_path / "bus" / "outbox.db"
    agent = Outbox(path)
    kiosk = Kiosk(path)

    # Before the link runs: each process counts what the other put.
    feeding = _feed(agent, 0, 200)
    assert kiosk.ask("put 0 100") == "done"
    feeding.join()
    assert agent.count() == 300
    assert kiosk.ask("count") == "300"

    # The link drains while both go on writing.
    link = Link(BrokerSettings(port=mosquitto.port), VEHICLE, agent, lambda plan: None)
    link.start()
    feeding = _feed(agent, 200, 1000)
    assert kiosk.ask("put 100 400") == "done"
    feeding.join()
    expected = [f"pos{i:08d}" for i in range(1200)] + [f"tkt{i:08d}" for i in range(500)]
    wait_until(lambda: agent.count() == 0 and len(receiver.ids()) >= len(expected),
               timeout=60, what="both processes' rows drained and acknowledged")
    assert sorted(receiver.ids()) == sorted(expected)  # every row, and each once
    assert kiosk.ask("count") == "0"

    # The link is idle: a ticket the kiosk puts leaves at once (the link used to notice
    # only at its half-second timer).
    waits = []
    for i in range(1000, 1010):
        time.sleep(0.13)  # at various points of the link's wait
        item = f"tkt{i:08d}"
        put_at = float(kiosk.ask(f"put1 {i}"))
        wait_until(lambda: receiver.arrived(item) is not None, timeout=5,  # noqa: B023
                   what=f"{item} at the broker")
        waits.append((receiver.arrived(item) or 0.0) - put_at)
    assert max(waits) < 0.3, waits
    assert statistics.median(waits) < 0.12, waits
    wait_until(lambda: agent.count() == 0, what="the tickets acknowledged and deleted")
    link.stop()
    kiosk.close()
    agent.close()
