"""Connecting to the MQTT broker, the same way on the bus and on the ground.

MQTT 3.1.1 on the wire so any broker serves (Mosquitto, a cluster, the embedded demo
broker); paho-mqtt 2.x with the VERSION2 callback API; TLS and credentials from config.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated

import paho.mqtt.client as mqtt
from pydantic import BaseModel, ConfigDict, Field

from medicobus.settings import Credentials


class TlsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ca_file: Path | None = None  # None: the system's trusted authorities
    cert_file: Path | None = None
    key_file: Path | None = None


class BrokerSettings(Credentials):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    tls: TlsSettings | None = None


def new_client(settings: BrokerSettings, client_id: str, *, persistent: bool,
               manual_ack: bool = False) -> mqtt.Client:
    """A configured, not yet connected client.

    `persistent` asks the broker to keep the session (subscriptions and queued QoS 1
    messages) while the client is away, so nothing published meanwhile is lost.
    """
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=not persistent,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.secret())
    if settings.tls is not None:
        client.tls_set(
            ca_certs=str(settings.tls.ca_file) if settings.tls.ca_file else None,
            certfile=str(settings.tls.cert_file) if settings.tls.cert_file else None,
            keyfile=str(settings.tls.key_file) if settings.tls.key_file else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    client.reconnect_delay_set(min_delay=1, max_delay=60)
    return client


def describe_refusal(reason: mqtt.ReasonCode | int | str) -> str:
    """A line an installer can act on when the broker refuses the connection."""
    text = str(reason)
    lowered = text.lower()
    if any(word in lowered for word in ("username", "password", "credentials", "authori")):
        # Mosquitto answers "not authorised" to a wrong password under MQTT 3.1.1.
        return (f"broker refused the connection ({text}): wrong username or password, or "
                "an account the broker does not allow; check broker.username and the "
                "password in the config, and the account on the broker")
    return f"broker refused the connection: {text}"
