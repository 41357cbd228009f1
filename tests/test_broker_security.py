"""The production broker configuration (config/mosquitto/) keeps buses in their own lane.

Every test runs the shipped mosquitto.conf and ACL (see tests/secure_broker.py) and speaks
to it with the project's own client factory, `medicobus.mqtt.new_client`.
"""

from __future__ import annotations

import queue
import re
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from medicobus import contract
from medicobus.contract import Channel, topic
from medicobus.mqtt import BrokerSettings, new_client
from tests.harness import wait_until
from tests.secure_broker import (
    SHIPPED_ACL,
    SHIPPED_CONF,
    SecureBroker,
    make_certs,
    start_secure_broker,
)

WAIT = 5.0  # seconds for anything expected to happen
QUIET = 1.0  # seconds to wait for something that must not happen, once a later one arrived


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[SecureBroker]:
    started = start_secure_broker(tmp_path, vehicles=["a", "b"])
    yield started
    started.broker.stop()


class Peer:
    """A connected paho client that records what happens to it."""

    def __init__(self, settings: BrokerSettings, client_id: str, *,
                 persistent: bool = False) -> None:
        self.client = new_client(settings, client_id, persistent=persistent)
        self.connack: queue.Queue[mqtt.ReasonCode] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.subacks: queue.Queue[list[mqtt.ReasonCode]] = queue.Queue()
        self.acked: set[int] = set()
        self.disconnected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put(rcs)
        self.client.on_publish = lambda c, u, mid, rc, p: self.acked.add(mid)
        self.client.on_disconnect = lambda c, u, f, rc, p: self.disconnected.set()
        self.client.connect(settings.host, settings.port, settings.keepalive_s)
        self.client.loop_start()
        self.result = self.connack.get(timeout=WAIT)

    def expect_connected(self) -> Peer:
        assert not self.result.is_failure, f"connection refused: {self.result}"
        return self

    def subscribe(self, *filters: str) -> list[mqtt.ReasonCode]:
        self.client.subscribe([(f, 1) for f in filters])
        return self.subacks.get(timeout=WAIT)

    def publish(self, name: str, payload: bytes, *, retain: bool = False) -> int:
        info = self.client.publish(name, payload, qos=1, retain=retain)
        return info.mid

    def wait_acked(self, mid: int) -> None:
        deadline = time.monotonic() + WAIT
        while mid not in self.acked:
            assert time.monotonic() < deadline, f"no PUBACK for message {mid}"
            time.sleep(0.02)

    def received_until(self, payload: bytes) -> list[tuple[str, bytes]]:
        """Every message received up to and including `payload`, which must arrive."""
        seen: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + WAIT
        while True:
            message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            seen.append((message.topic, bytes(message.payload)))
            if message.payload == payload:
                return seen

    def drain(self, seconds: float = QUIET) -> list[tuple[str, bytes]]:
        time.sleep(seconds)
        seen = []
        while not self.messages.empty():
            message = self.messages.get_nowait()
            seen.append((message.topic, bytes(message.payload)))
        return seen

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def ground(secure: SecureBroker, *, persistent: bool = False) -> Peer:
    """The ground service: plain MQTT on the localhost listener, subscribed to all uplink."""
    peer = Peer(secure.settings("ground"), "ground-ingest", persistent=persistent)
    peer.expect_connected()
    assert not peer.subscribe(contract.uplink_subscription())[0].is_failure
    return peer


def bus(secure: SecureBroker, vehicle: str) -> Peer:
    """A bus: TLS listener, its own account."""
    return Peer(secure.settings(vehicle, tls=True), f"bus-{vehicle}").expect_connected()


# --- the shipped files -------------------------------------------------------------------

def _directives(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_shipped_configuration_has_the_required_settings() -> None:
    lines = _directives(SHIPPED_CONF.read_text())
    flat = {" ".join(words) for words in lines}
    assert "allow_anonymous false" in flat
    assert "password_file /etc/mosquitto/medicobus/passwd" in flat
    assert "acl_file /etc/mosquitto/medicobus/acl" in flat
    assert "persistence true" in flat
    queued = next(int(w[1]) for w in lines if w[0] == "max_queued_messages")
    assert queued == 0 or queued >= 1_000_000
    listeners = [w for w in lines if w[0] == "listener"]
    assert ["listener", "1883", "127.0.0.1"] in listeners  # plain MQTT: localhost only
    assert ["listener", "8883"] in listeners
    # Everything after `listener 8883` up to the next listener belongs to it.
    start = lines.index(["listener", "8883"])
    tls = {w[0]: w[1:] for w in lines[start + 1:]}
    assert {"cafile", "certfile", "keyfile"} <= tls.keys()
    assert tls["tls_version"] == ["tlsv1.2"]


def test_the_acl_never_grants_a_bus_a_wildcard() -> None:
    lines = _directives(SHIPPED_ACL.read_text())
    patterns = [w for w in lines if w[0] == "pattern"]
    assert patterns, "vehicles get their rights from %u patterns"
    for words in patterns:
        assert "%u" in words[-1] and "+" not in words[-1] and "#" not in words[-1], words
    assert sorted((w[1], w[2].rsplit("/", 1)[1]) for w in patterns) == sorted(
        [("write", c.value) for c in contract.UPLINK_CHANNELS]
        + [("read", c.value) for c in contract.DOWNLINK_CHANNELS])


def test_a_full_batch_fits_in_the_largest_packet_the_broker_accepts() -> None:
    limit = next(int(w[1]) for w in _directives(SHIPPED_CONF.read_text())
                 if w[0] == "max_packet_size")
    now = datetime.now(UTC)
    item = contract.VisitEvent(vehicle="v" * 63, ts=now, event="departure", visit="x" * 120,
                               stop="s" * 64, lat=-89.123456789, lon=-179.123456789)
    batch = contract.Batch(vehicle="v" * 63, ts=now, items=[item] * contract.MAX_BATCH_ITEMS)
    size = len(batch.to_json()) + len(topic("v" * 63, Channel.BATCH)) + 16  # + MQTT headers
    assert size < limit / 2, f"a full batch is {size} bytes, max_packet_size is {limit}"


# --- accounts and ACL on a running broker ---------------------------------------------------

def test_a_bus_publishes_its_own_position_and_the_ground_receives_it(
        secure: SecureBroker) -> None:
    g = ground(secure)
    a = bus(secure, "a")
    a.wait_acked(a.publish(topic("a", Channel.POSITION), b"a-fix"))
    assert g.received_until(b"a-fix") == [(topic("a", Channel.POSITION), b"a-fix")]
    a.close()
    g.close()


def test_a_bus_cannot_publish_as_another_bus(secure: SecureBroker) -> None:
    g = ground(secure)
    for channel in [*contract.UPLINK_CHANNELS, *contract.DOWNLINK_CHANNELS]:
        # One connection per attempt: Mosquitto closes it after a denied publish.
        a = bus(secure, "a")
        a.wait_acked(a.publish(topic("b", channel), b"forged"))
        a.close()
    # Mosquitto routes a publish to subscribers when it handles it, before acknowledging
    # it: once a later control message reached the ground, a forged one would have too.
    a = bus(secure, "a")
    a.publish(topic("a", Channel.STATUS), b"control")
    seen = g.received_until(b"control")
    assert seen == [(topic("a", Channel.STATUS), b"control")]
    assert g.drain() == []
    a.close()
    g.close()


def test_a_denied_publish_is_still_acknowledged_then_the_bus_is_disconnected(
        secure: SecureBroker) -> None:
    """Mosquitto 2.0 quirk worth knowing on the bus: PUBACK does not mean accepted.

    A bus whose account does not match the vehicle id in its topics sees its messages
    acknowledged (so its outbox would drop them) and its connection closed each time.
    """
    a = bus(secure, "a")
    a.wait_acked(a.publish(topic("b", Channel.POSITION), b"forged"))
    assert a.disconnected.wait(WAIT)
    a.close()


def test_a_bus_reads_its_own_plan_and_never_another_bus_plan(secure: SecureBroker) -> None:
    g = ground(secure)
    for vehicle in ("a", "b"):
        g.wait_acked(g.publish(topic(vehicle, Channel.PLAN), f"plan-{vehicle}".encode(),
                               retain=True))
    a = bus(secure, "a")
    # Mosquitto grants these subscriptions but delivers only what the ACL lets `a` read.
    a.subscribe("#", "medicobus/#", "medicobus/v1/vehicles/+/plan", topic("b", Channel.PLAN))
    a.subscribe(topic("a", Channel.PLAN))
    assert a.received_until(b"plan-a")[-1] == (topic("a", Channel.PLAN), b"plan-a")
    # A plan for b published now, while a is subscribed, does not reach a either.
    g.wait_acked(g.publish(topic("b", Channel.PLAN), b"plan-b-2", retain=True))
    g.wait_acked(g.publish(topic("a", Channel.PLAN), b"plan-a-2", retain=True))
    later = a.received_until(b"plan-a-2") + a.drain()
    everything = [payload for _, payload in later]
    assert not any(p.startswith(b"plan-b") for p in everything), later
    b = bus(secure, "b")
    b.subscribe(topic("b", Channel.PLAN))
    assert b.received_until(b"plan-b-2") == [(topic("b", Channel.PLAN), b"plan-b-2")]
    for peer in (a, b, g):
        peer.close()


def test_a_bus_reads_its_own_acks_and_can_forge_none(secure: SecureBroker) -> None:
    a, b = bus(secure, "a"), bus(secure, "b")
    a.subscribe("medicobus/v1/vehicles/+/ack", topic("a", Channel.ACK))
    # b forges acks for a (which would make a delete rows the ground never stored), and
    # for itself: the ACL drops both (and disconnects b each time).
    for name in (topic("a", Channel.ACK), topic("b", Channel.ACK)):
        b.wait_acked(b.publish(name, b"forged-ack"))
        b.close()
        b = bus(secure, "b")
    b.subscribe(topic("b", Channel.ACK))
    g = ground(secure)
    g.wait_acked(g.publish(topic("b", Channel.ACK), b"ack-b"))
    g.wait_acked(g.publish(topic("a", Channel.ACK), b"ack-a"))
    assert a.received_until(b"ack-a") == [(topic("a", Channel.ACK), b"ack-a")]
    assert b.received_until(b"ack-b") == [(topic("b", Channel.ACK), b"ack-b")]
    assert a.drain() == []
    for peer in (a, b, g):
        peer.close()


def test_a_bus_cannot_read_other_buses_uplink(secure: SecureBroker) -> None:
    a = bus(secure, "a")
    a.subscribe("#", contract.uplink_subscription())
    b = bus(secure, "b")
    b.wait_acked(b.publish(topic("b", Channel.POSITION), b"b-fix"))
    a.wait_acked(a.publish(topic("a", Channel.PLAN), b"not-allowed"))  # and write no plan
    assert a.drain() == []
    a.close()
    b.close()


def test_a_bus_cannot_take_over_the_ground_session(secure: SecureBroker) -> None:
    g = ground(secure, persistent=True)
    g.close()
    b = bus(secure, "b")
    b.wait_acked(b.publish(topic("b", Channel.EVENT), b"queued"))
    # `a` asks for the ground's client id and a persistent session: the broker makes its
    # client id "a", so the ground's session and its queued message stay the ground's.
    thief = Peer(secure.settings("a", tls=True), "ground-ingest", persistent=True)
    thief.expect_connected()
    assert thief.drain() == []
    thief.close()
    g = Peer(secure.settings("ground"), "ground-ingest", persistent=True).expect_connected()
    assert g.received_until(b"queued") == [(topic("b", Channel.EVENT), b"queued")]
    b.close()
    g.close()


# --- refusals --------------------------------------------------------------------------------

def test_anonymous_connections_are_refused(secure: SecureBroker) -> None:
    for tls in (False, True):
        peer = Peer(secure.settings(None, tls=tls), "anonymous")
        peer.close()
        assert peer.result.is_failure
        assert str(peer.result) == "Not authorized"


def test_a_wrong_password_is_refused_and_logged(secure: SecureBroker) -> None:
    peer = Peer(secure.settings("a", tls=True, password="not-the-password"), "bus-a")
    peer.close()
    assert peer.result.is_failure
    # MQTT 3.1.1 CONNACK 5: Mosquitto 2.0 does not use 4 "bad user name or password".
    assert str(peer.result) == "Not authorized"
    unknown = Peer(secure.settings("zz", password="whatever"), "bus-zz")
    unknown.close()
    assert unknown.result.is_failure
    # The refusal names neither the account nor the client id: only the address and port
    # of the "New connection" line logged just before it identify the bus.
    log = secure.broker.log_text()
    assert re.search(rf"New connection from 127\.0\.0\.1:\d+ on port {secure.tls_port}\.", log)
    assert log.count("Client <unknown> disconnected, not authorised.") == 2, log


# --- TLS -------------------------------------------------------------------------------------

def test_tls_works_with_the_ca_from_make_certs(secure: SecureBroker) -> None:
    a = bus(secure, "a")
    sock = a.client.socket()
    assert isinstance(sock, ssl.SSLSocket)
    assert sock.version() in ("TLSv1.2", "TLSv1.3")
    a.close()


def test_a_client_that_does_not_trust_the_ca_is_refused(
        secure: SecureBroker, tmp_path: Path) -> None:
    other_ca = make_certs(tmp_path / "other-ca", "localhost", "127.0.0.1")
    for ca_file in (other_ca, None):  # another CA; the system's trusted authorities
        settings = secure.settings("a", tls=True)
        assert settings.tls is not None
        settings.tls.ca_file = ca_file
        client = new_client(settings, "bus-a", persistent=False)
        with pytest.raises(ssl.SSLCertVerificationError):
            client.connect(settings.host, settings.port)
    # The broker logs the refused handshake (its wording varies with the moment the client
    # hangs up), shortly after the client gave up: wait for it.
    wait_until(lambda: "unknown ca" in secure.broker.log_text()
               or "Client connection from 127.0.0.1 failed" in secure.broker.log_text(),
               timeout=5, what="the broker's log of the refused handshake")


def test_the_tls_listener_speaks_only_tls(secure: SecureBroker) -> None:
    settings = secure.settings("a")
    settings.port = secure.tls_port
    client = new_client(settings, "bus-a", persistent=False)
    refused = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: None if rc.is_failure else refused.clear()
    client.on_disconnect = lambda c, u, f, rc, p: refused.set()
    client.connect(settings.host, settings.port)
    client.loop_start()
    try:
        assert refused.wait(WAIT)
    finally:
        client.disconnect()
        client.loop_stop()
