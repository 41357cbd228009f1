"""The agent's loop survives a step that raises, logs it (rate-limited) and keeps its state:
a crash would have systemd restart the agent with an empty filter (issue 9)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from medicobus.geo import offset
from medicobus.mqtt import BrokerSettings
from onboard.agent import STEP_ERROR_LOG_S, Agent
from onboard.config import GpsSettings, OnboardSettings
from onboard.telemetry.fix import Fix
from tests.brokers import free_port
from tests.clocks import ManualClock
from tests.harness import MONDAY_8AM, VEHICLE

pytestmark = pytest.mark.timeout(60)


def fix(second: int) -> Fix:
    lat, lon = offset(48.3838, 0.6783, 10.0 * second, 0.0)
    return Fix(MONDAY_8AM + timedelta(seconds=second), lat, lon, speed=10.0, acc=5.0)


class ScriptedSource:
    """A GpsSource playing `script`: a Fix, or an exception to raise (a bug in a source,
    injected); sets `done` at the end."""

    def __init__(self, script: list[Fix | Exception]) -> None:
        self.script = list(script)
        self.done = threading.Event()

    def read(self) -> Fix | None:
        if not self.script:
            self.done.set()
            return None
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        pass


def agent_with(tmp_path: Path, source: ScriptedSource, clock: ManualClock) -> Agent:
    settings = OnboardSettings(
        vehicle=VEHICLE, data_dir=tmp_path / "bus", broker=BrokerSettings(port=free_port()),
        gps=GpsSettings(poll_s=1.0),
    )  # fmt: skip
    return Agent(settings, source, clock)


def run_until_done(agent: Agent, source: ScriptedSource) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert source.done.wait(20), "the loop stopped before the end of its source"
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_step_that_raises_costs_that_step_only(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="onboard.agent")
    source = ScriptedSource([fix(0), fix(1), ZeroDivisionError("float division by zero"),
                             fix(1),  # read again after the failure: the filter remembers
                             fix(2), fix(3)])
    agent = agent_with(tmp_path, source, ManualClock(MONDAY_8AM))
    run_until_done(agent, source)
    assert agent.step_errors == 1
    assert agent.filter.rejected == {"duplicate": 1}
    assert agent.filter.last is not None and agent.filter.last.ts == fix(3).ts
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "failed" in errors[0].getMessage()


def test_the_pipeline_failing_keeps_the_filter_and_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault past the filter (injected in the geofence): the fix was accepted, the loop
    goes on and the next fixes are judged against it."""
    source = ScriptedSource([fix(0), fix(1), fix(2), fix(2), fix(3)])
    agent = agent_with(tmp_path, source, ManualClock(MONDAY_8AM))
    update: Callable[[Fix], list[object]] = agent.visits.update  # type: ignore[assignment]

    def fails_at_second_1(f: Fix) -> list[object]:
        if f.ts == fix(1).ts:
            raise OSError(28, "No space left on device")
        return update(f)

    monkeypatch.setattr(agent.visits, "update", fails_at_second_1)
    run_until_done(agent, source)
    assert agent.step_errors == 1
    assert agent.filter.rejected == {"duplicate": 1}
    assert agent.filter.last is not None and agent.filter.last.ts == fix(3).ts


def test_failures_again_and_again_are_logged_once_a_minute(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="onboard.agent")
    failures = 150  # one a loop, the loop pausing poll_s = 1 s of the agent's clock
    source = ScriptedSource([RuntimeError(f"bug {i}") for i in range(failures)])
    agent = agent_with(tmp_path, source, ManualClock(MONDAY_8AM))
    run_until_done(agent, source)
    assert agent.step_errors == failures
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == len(range(0, failures, int(STEP_ERROR_LOG_S)))  # at 0, 60, 120 s
