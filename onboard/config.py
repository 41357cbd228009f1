"""The bus's own configuration (one TOML file per vehicle): who it is, where the broker
is, where GPS comes from and how fixes are filtered and reported."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medicobus import contract
from medicobus.mqtt import BrokerSettings
from medicobus.settings import load_toml

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GpsSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 2947
    timeout_s: Positive = 3.0  # a gpsd that does not answer within this is taken as hung
    poll_s: Positive = 1.0


class FilterSettings(_Section):
    max_accuracy_m: Positive = 50.0  # coarser fixes are dropped
    max_speed_kmh: Positive = 160.0  # a jump implying more than this is dropped
    future_tolerance_s: Positive = 120.0


class ReportSettings(_Section):
    min_interval_s: Positive = 2.0  # never more often than this
    moving_interval_s: Positive = 30.0  # at least this often while moving
    heartbeat_s: Positive = 600.0  # a parked bus reports only this often
    distance_m: Positive = 100.0  # a displacement this large is reported
    heading_deg: Positive = 25.0  # so is a turn this sharp while moving
    moving_speed_kmh: Positive = 5.0


class GeofenceSettings(_Section):
    dwell_s: Positive = 30.0  # inside the fence this long at low speed to arrive
    max_speed_kmh: Positive = 8.0
    exit_margin_m: Positive = 60.0  # past radius + margin to leave


class OutboxSettings(_Section):
    max_rows: Annotated[int, Field(ge=1000)] = 200_000
    batch_size: Annotated[int, Field(ge=1, le=contract.MAX_BATCH_ITEMS)] = 200
    inflight_batches: Annotated[int, Field(ge=1, le=100)] = 8


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

    def key(self) -> bytes:
        return self.key_file.read_bytes().strip()


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
