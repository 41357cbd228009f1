"""Publishing what each bus needs for its day, retained, so it gets it whenever it connects
and then works offline: the plan (at start, on every reconnection, after midnight) and the
hashed appointments (likewise, and as soon as a new export is imported)."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import date

import paho.mqtt.client as mqtt

from ground.fleet import Fleet, day_plan
from medicobus import contract

log = logging.getLogger(__name__)


class PlanPublisher:
    def __init__(self, fleet: Fleet, client: mqtt.Client) -> None:
        self.fleet = fleet
        self.client = client
        self.published_for: date | None = None
        self._appointments_sent: dict[str, str] = {}  # vehicle -> id of the set last sent

    def publish(self, day: date, vehicles: Collection[str] | None = None) -> None:
        """Every bus's plan for `day` (or these buses', after the tournée changed)."""
        for vehicle in self.fleet.vehicles:
            if vehicles is not None and vehicle.id not in vehicles:
                continue
            plan = day_plan(self.fleet, vehicle.id, day)
            self.client.publish(contract.topic(vehicle.id, contract.Channel.PLAN),
                                plan.to_json(), qos=1, retain=True)
            log.info("plan for %s on %s published: %d visits", vehicle.id, day,
                     len(plan.visits))
        if vehicles is None:
            self.published_for = day

    def publish_if_new_day(self, today: date) -> None:
        if self.published_for != today:
            self.publish(today)

    def publish_appointments(self, sets: list[contract.Appointments], again: bool = False) -> None:
        """Send the sets not sent yet (all of them `again`, after a reconnection)."""
        for appointments in sets:
            if not again and self._appointments_sent.get(appointments.vehicle) == appointments.id:
                continue
            self.client.publish(contract.topic(appointments.vehicle,
                                               contract.Channel.APPOINTMENTS),
                                appointments.to_json(), qos=1, retain=True)
            self._appointments_sent[appointments.vehicle] = appointments.id
            log.info("appointments for %s on %s published: %d", appointments.vehicle,
                     appointments.day, len(appointments.items))
