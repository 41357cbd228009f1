"""The bus's own configuration (one TOML file per vehicle): who it is, where the broker
is, where GPS comes from and how fixes are filtered and reported."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medicobus import contract
from medicobus.clock import DEFAULT_ZONE
from medicobus.motion import MOVING_SPEED_KMH
from medicobus.mqtt import BrokerSettings
from medicobus.settings import ZoneName, load_toml
from onboard.outbox import DEFAULT_RESERVE_MB

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GpsSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 2947
    timeout_s: Positive = 3.0  # a gpsd that does not answer within this is taken as hung
    poll_s: Positive = 1.0


class FilterSettings(_Section):
    max_accuracy_m: Positive = 50.0  # coarser fixes are dropped (see telemetry/gps.py: acc)
    max_speed_kmh: Positive = 160.0  # a jump implying more than this is dropped
    # Ignored since 2026-12: fixes are judged by GPS time, never against the Pi's clock
    # (telemetry/fix_filter.py). Still accepted so that the buses' onboard.toml files load.
    future_tolerance_s: Positive | None = None


class ReportSettings(_Section):
    min_interval_s: Positive = 2.0  # never more often than this
    moving_interval_s: Positive = 30.0  # at least this often while moving
    heartbeat_s: Positive = 600.0  # a parked bus reports only this often
    distance_m: Positive = 100.0  # a displacement this large is reported
    heading_deg: Positive = 25.0  # so is a turn this sharp while moving
    moving_speed_kmh: Positive = MOVING_SPEED_KMH  # see medicobus.motion


class GeofenceSettings(_Section):
    dwell_s: Positive = 30.0  # inside the fence this long at low speed to arrive
    max_speed_kmh: Positive = 8.0
    exit_margin_m: Positive = 60.0  # past radius + margin to leave
    # Parked this long this close to the next stop, outside its fence (the market square
    # taken, a car park nearby): the bus is there, and the place is learned as the stop's.
    park_near_m: Positive = 400.0
    park_dwell_s: Positive = 300.0


class OutboxSettings(_Section):
    max_rows: Annotated[int, Field(ge=1000)] = 200_000
    batch_size: Annotated[int, Field(ge=1, le=contract.MAX_BATCH_ITEMS)] = 200
    inflight_batches: Annotated[int, Field(ge=1, le=100)] = 8
    # Disk space held for events when the disk fills up (see onboard/outbox.py).
    reserve_mb: Annotated[float, Field(ge=1, le=4096)] = DEFAULT_RESERVE_MB


class KioskSettings(_Section):
    language: str = "fr"  # the language the welcome screen starts in
    # The secret shared with the ground that keys the appointment digests (HMAC): the bus
    # never receives a name, only digests it can compare what a patient types against.
    key_file: Path = Path("/etc/medicobus/checkin.key")
    staff_pin: Annotated[str, Field(pattern=r"^\d{4,8}$")] = "2468"
    idle_warning_s: Positive = 60.0  # no touch for this long: "are you still there?"
    idle_reset_s: Positive = 90.0  # then everything is cleared for the next patient
    retention_hours: Positive = 24.0  # check-in data on the bus is purged after this
    default_consult_min: Positive = 15.0  # until the day has observed consultations
    timezone: ZoneName = DEFAULT_ZONE  # the fleet's: times on screen, "today"
    # The ground's public address (https://medicobus.example.org): a ticket's QR code opens
    # its queue there, at /t/<token>. None: tickets carry no QR code.
    follow_url: Annotated[str, Field(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")] | None = None

    # The ticket said aloud after check-in (espeak-ng, offline), for who reads or sees badly.
    speak: bool = False
    voice_command: list[str] = ["espeak-ng", "-s", "140"]  # then -v <voice> <text>

    def follow_link(self, token: str) -> str | None:
        """Where the ticket with `token` is followed on a phone."""
        return None if self.follow_url is None else f"{self.follow_url.rstrip('/')}/t/{token}"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def key(self) -> bytes:
        return self.key_file.read_bytes().strip()


class PrinterSettings(_Section):
    """`[printer]` of the onboard configuration. `kind = "none"`: no printer, tickets on
    screen only. `serial`: `port` is the serial device (prefer /dev/serial/by-id/...);
    `usb`: the printer's `vendor_id` and `product_id` (lsusb); `file`: `port` is a device
    file the kernel's usblp driver gives (/dev/usb/lp0), which cannot report its paper."""

    kind: Literal["none", "serial", "usb", "file"] = "none"
    port: str | None = None
    baudrate: Annotated[int, Field(ge=300, le=921_600)] = 9600
    vendor_id: Annotated[int, Field(ge=0, le=0xFFFF)] | None = None
    product_id: Annotated[int, Field(ge=0, le=0xFFFF)] | None = None
    # A status query waits this long for the answer (pyserial reads until it times out).
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 0.5
    profile: str | None = None  # python-escpos printer profile ("TM-T20II"); None: generic

    @model_validator(mode="after")
    def _device_given(self) -> PrinterSettings:
        if self.kind in ("serial", "file") and not self.port:
            raise ValueError(f"port: required for a printer of kind {self.kind!r}")
        if self.kind == "usb" and (self.vendor_id is None or self.product_id is None):
            raise ValueError("vendor_id and product_id: required for a USB printer (lsusb)")
        return self


class DisplaySettings(_Section):
    """`[display]`: the waiting room's screen (a TV or a tablet on the bus's local network,
    opening http://<the Pi>:<port>/), served by `medicobus display`."""

    host: str = "0.0.0.0"  # the bus's local network: the room's screen is another device
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    room: Annotated[str, Field(min_length=1, max_length=40)] = "cabinet"  # where one goes
    chime: bool = True
    speech: bool = False  # the call spoken in French by the browser (speech synthesis)
    poll_s: Annotated[float, Field(gt=0, le=5)] = 0.25  # how often it looks at the queue


SensorType = Literal["engine", "battery", "fridge",
                     "simulated-engine", "simulated-battery", "simulated-fridge"]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
# The quantity a value is reported under, with its unit: the contract's pattern.
_QUANTITY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_SENSOR_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_NEEDS_PORT = ("engine", "battery")


class SensorSettings(_Section):
    """One equipment sensor (`[[sensors]]` in the TOML file), read by the plugin `type`."""

    type: SensorType
    # The name its readings carry ("engine", "battery", "fridge"); defaults from the type.
    # Two sensors of one type (two fridges) need names of their own.
    name: str | None = None
    port: str | None = None  # serial device (engine, battery): prefer /dev/serial/by-id/...
    baudrate: Annotated[int, Field(ge=300, le=4_000_000)] | None = None  # None: the plugin's
    protocol: str | None = None  # OBD-II protocol id "1".."A" (ELM327 ATSP); None: automatic
    timeout_s: Positive = 2.0  # a device silent for this long within a read is taken as gone
    w1_dir: Path = Path("/sys/bus/w1/devices")  # the kernel's 1-wire devices (fridge)
    probes: dict[str, str] = {}  # DS18B20 id ("28-0316a2791bff") -> quantity ("temp_c")
    interval_s: Positive | None = None  # None: the plugin's natural pace
    heartbeat_s: Positive = 300.0  # everything is reported at least this often
    stale_after_s: Positive | None = None  # silent this long: values sent as null, "stale"
    deadbands: dict[str, NonNegative] = {}  # per quantity, over the defaults (sampling.py)
    ranges: dict[str, tuple[float, float]] = {}  # per quantity physical range, over defaults
    excursion_at: time | None = time(10, 30)  # simulated-fridge: local start of its excursion

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _SENSOR_NAME.match(value):
            raise ValueError("must be lower case letters, digits, '-' or '_' (max 32), "
                             "starting with a letter")
        return value

    @field_validator("probes")
    @classmethod
    def _probes(cls, value: dict[str, str]) -> dict[str, str]:
        for probe, quantity in value.items():
            if not _QUANTITY.match(quantity):
                raise ValueError(f"probe {probe!r}: quantity {quantity!r} must be lower case "
                                 "letters, digits and '_' with its unit, like 'temp_c'")
        return value

    @field_validator("deadbands", "ranges")
    @classmethod
    def _quantities(cls, value: dict[str, object]) -> dict[str, object]:
        for quantity in value:
            if not _QUANTITY.match(quantity):
                raise ValueError(f"{quantity!r} is not a quantity name like 'coolant_c'")
        return value

    @field_validator("ranges")
    @classmethod
    def _ordered(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for quantity, (low, high) in value.items():
            if not low < high:
                raise ValueError(f"{quantity}: the range's low end must be below its high end")
        return value

    @model_validator(mode="after")
    def _port_when_serial(self) -> SensorSettings:
        if self.type in _NEEDS_PORT and not self.port:
            raise ValueError(f"port: required for a sensor of type {self.type!r} "
                             "(the serial device, like /dev/ttyUSB0)")
        if self.protocol is not None and self.protocol not in "123456789A":
            raise ValueError(f"protocol: {self.protocol!r} is not an OBD-II protocol id "
                             "('1' to '9' or 'A'); leave it out for automatic")
        return self

    @property
    def sensor_name(self) -> str:
        return self.name or self.type.removeprefix("simulated-")


class OnboardSettings(_Section):
    vehicle: contract.VehicleId
    data_dir: Path = Path("/var/lib/medicobus")
    broker: BrokerSettings = BrokerSettings()
    gps: GpsSettings = GpsSettings()
    filter: FilterSettings = FilterSettings()
    report: ReportSettings = ReportSettings()
    geofence: GeofenceSettings = GeofenceSettings()
    outbox: OutboxSettings = OutboxSettings()
    kiosk: KioskSettings = KioskSettings()
    printer: PrinterSettings = PrinterSettings()
    display: DisplaySettings = DisplaySettings()
    sensors: list[SensorSettings] = []

    @model_validator(mode="after")
    def _sensor_names_unique(self) -> OnboardSettings:
        # Readings are told apart on the ground by sensor name only.
        seen: dict[str, int] = {}
        for i, sensor in enumerate(self.sensors):
            if sensor.sensor_name in seen:
                raise ValueError(f"sensors[{i}].name: {sensor.sensor_name!r} is already the "
                                 f"name of sensors[{seen[sensor.sensor_name]}]; give each "
                                 "sensor its own name")
            seen[sensor.sensor_name] = i
        return self

    @model_validator(mode="after")
    def _account_is_the_vehicle(self) -> OnboardSettings:
        # The broker's ACL lets an account write only under its own name: a mismatch would
        # have every message acknowledged by the broker and then silently dropped.
        if self.broker.username is not None and self.broker.username != self.vehicle:
            raise ValueError(f"broker.username {self.broker.username!r} must be the vehicle "
                             f"id {self.vehicle!r}: the broker's ACL is per vehicle account")
        return self


def load_onboard(path: Path | str) -> OnboardSettings:
    return load_toml(path, OnboardSettings)
