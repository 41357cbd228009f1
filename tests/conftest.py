from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers import Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto with anonymous access, on a free port."""
    broker = Mosquitto(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()
