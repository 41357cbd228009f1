"""Publishing each vehicle's plan for the day, retained, so a bus gets it whenever it
connects and then works offline: at start, on every reconnection, and after midnight."""

from __future__ import annotations

import logging
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

    def publish(self, day: date) -> None:
        for vehicle in self.fleet.vehicles:
            plan = day_plan(self.fleet, vehicle.id, day)
            self.client.publish(contract.topic(vehicle.id, contract.Channel.PLAN),
                                plan.to_json(), qos=1, retain=True)
            log.info("plan for %s on %s published: %d visits", vehicle.id, day,
                     len(plan.visits))
        self.published_for = day

    def publish_if_new_day(self, today: date) -> None:
        if self.published_for != today:
            self.publish(today)
