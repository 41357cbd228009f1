from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from ground.fleet import load_fleet
from ground.service import GroundService
from tests.brokers import Mosquitto
from tests.console import console_ground
from tests.harness import FLEET
from tests.receivers import Inbox, make_certificate, serve_smtp
from tests.simulated_month import Month, november_month
from tests.test_web_browser import ARGS, CHROMIUM


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto with anonymous access, on a free port."""
    broker = Mosquitto(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and its key."""
    return make_certificate(tmp_path)


@pytest.fixture
def smtp(certificate: tuple[Path, Path]) -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server requiring STARTTLS and a login, on a free port."""
    yield from serve_smtp(certificate)


@pytest.fixture
def console_service(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[GroundService]:
    """The ground with its console, one account per role (tests.console)."""
    with console_ground(tmp_path, mosquitto.port) as g:
        yield g


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, once per test module."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def november(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Month]:
    """November 2026 simulated and fed to a real store (tests/simulated_month.py): read
    only, shared by the report's tests."""
    month = november_month(tmp_path_factory.mktemp("november"))
    yield month
    month.close()


@pytest.fixture(scope="session")
def october(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Month]:
    """October 2026 (the clock change) on the demo's fleet, in a directory laid out as a
    demo leaves its data (`ground.db`): read only."""
    month = Month(tmp_path_factory.mktemp("october"), "2026-10", load_fleet(FLEET))
    yield month
    month.close()
