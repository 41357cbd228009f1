"""The tests run the same brokers as the demo: see medicobus/brokers.py."""

from medicobus.brokers import Mosquitto, free_port, wait_for_port

__all__ = ["Mosquitto", "free_port", "wait_for_port"]
