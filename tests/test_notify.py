"""Alert notifications delivered to a real SMTP server (aiosmtpd, with STARTTLS and a
login) and a real local HTTP receiver, including one that is down, then up."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ground.alerts import DEFAULT_RULES, Alert, AlertEngine, AlertStorage
from ground.fleet import load_fleet
from ground.notify import Notifier, NotifySettings, body, subject
from ground.state import LiveState
from ground.store import Store
from medicobus import contract
from tests.brokers import free_port
from tests.clocks import ManualClock
from tests.harness import FLEET
from tests.receivers import Inbox, Receiver

OPENED = datetime(2026, 11, 23, 9, 12, tzinfo=UTC)


def alert(**changes: Any) -> Alert:
    base: dict[str, Any] = dict(
        id=7, vehicle="perche-1", rule="fridge_temp", title_fr="réfrigérateur hors plage",
        title_en="fridge out of range", severity="critical", opened_at=OPENED,
        value_at_open=9.1, acknowledged_by=None, acknowledged_at=None, closed_at=None,
        last_value=9.1, unit="°C")  # fmt: skip
    return Alert(**{**base, **changes})


# -- SMTP ----------------------------------------------------------------------------------


def mail_settings(port: int, cert: Path, **extra: Any) -> NotifySettings:
    return NotifySettings.model_validate({"email": {
        "host": "localhost", "port": port, "security": "starttls", "ca_file": cert,
        "username": "alerts", "password": "s3cret", "from_addr": "alertes@medicobus.test",
        "to": ["flotte@medicobus.test", "astreinte@medicobus.test"], "backoff_s": 0.05,
        "timeout_s": 5, **extra}})  # fmt: skip


def test_mail_over_starttls_with_a_french_subject(smtp: tuple[Inbox, int],
                                                  certificate: tuple[Path, Path]) -> None:
    inbox, port = smtp
    notifier = Notifier(mail_settings(port, certificate[0]))
    notifier.start()
    try:
        notifier.notify("opened", alert())
        acked = alert(acknowledged_by="Marie Dupont",
                      acknowledged_at=OPENED + timedelta(minutes=3))
        notifier.notify("acknowledged", acked)
        notifier.notify("closed", alert(closed_at=OPENED + timedelta(minutes=40),
                                        last_value=5.0))
        assert notifier.flush(15)
    finally:
        notifier.stop()
    mails = inbox.wait(3)
    assert [m["Subject"] for m in mails] == [
        "[Médicobus] perche-1 : réfrigérateur hors plage (9,1 °C)",
        "[Médicobus] perche-1 : réfrigérateur hors plage, pris en charge par Marie Dupont",
        "[Médicobus] perche-1 : fin d'alerte, réfrigérateur hors plage (5,0 °C)",
    ]
    envelope, first = inbox.messages[0]
    assert envelope.rcpt_tos == ["flotte@medicobus.test", "astreinte@medicobus.test"]
    assert first["From"] == "alertes@medicobus.test"
    text = first.get_content()
    assert "Ouverte le 23/11/2026 à 10:12" in text  # local time (Paris) for people
    assert "gravité : critique" in text
    assert "Prise en charge par Marie Dupont le 23/11/2026 à 10:15" in mails[1].get_content()
    assert inbox.logins == ["alerts"] * 3
    assert notifier.stats["email"]["sent"] == 3


def test_mail_filters_by_severity_and_event(smtp: tuple[Inbox, int],
                                           certificate: tuple[Path, Path]) -> None:
    inbox, port = smtp
    notifier = Notifier(mail_settings(port, certificate[0], events=["opened"]))
    notifier.start()
    try:
        notifier.notify("opened", alert(severity="info"))  # below "warning": not mailed
        notifier.notify("closed", alert(closed_at=OPENED))  # not a chosen event
        notifier.notify("opened", alert(id=8))
        assert notifier.flush(15)
    finally:
        notifier.stop()
    assert len(inbox.wait(1)) == 1
    time.sleep(0.2)
    assert len(inbox.messages) == 1


def test_a_wrong_password_is_counted_never_raised(smtp: tuple[Inbox, int],
                                                  certificate: tuple[Path, Path]) -> None:
    inbox, port = smtp
    notifier = Notifier(mail_settings(port, certificate[0], password="wrong", retries=1))
    notifier.start()
    try:
        notifier.notify("opened", alert())
        assert notifier.flush(15)
    finally:
        notifier.stop()
    assert inbox.messages == []
    assert notifier.stats["email"]["failed"] == 1
    assert notifier.stats["email"]["retries"] == 1


# -- webhook -------------------------------------------------------------------------------


def hook_settings(port: int, **extra: Any) -> NotifySettings:
    return NotifySettings.model_validate({"webhooks": [{
        "url": f"http://127.0.0.1:{port}/hooks/medicobus", "timeout_s": 2, "backoff_s": 0.1,
        "backoff_max_s": 0.4, "headers": {"Authorization": "Bearer t0ken"}, **extra}]})


def test_webhook_posts_json() -> None:
    port = free_port()
    receiver = Receiver(port)
    notifier = Notifier(hook_settings(port))
    notifier.start()
    try:
        notifier.notify("opened", alert())
        assert notifier.flush(10)
    finally:
        notifier.stop()
        receiver.stop()
    [post] = receiver.posts
    assert post["event"] == "opened"
    assert post["text"] == "[Médicobus] perche-1 : réfrigérateur hors plage (9,1 °C)"
    assert post["alert"]["vehicle"] == "perche-1"
    assert post["alert"]["opened_at"] == "2026-11-23T09:12:00+00:00"
    assert post["alert"]["value_at_open"] == 9.1
    assert receiver.headers[0]["Authorization"] == "Bearer t0ken"


def test_webhook_down_then_up_is_retried_and_delivered_once() -> None:
    port = free_port()
    notifier = Notifier(hook_settings(port, retries=30))
    notifier.start()
    receiver: Receiver | None = None
    try:
        began = time.monotonic()
        notifier.notify("opened", alert())
        assert time.monotonic() - began < 0.1  # the engine's thread never waits
        deadline = time.monotonic() + 10
        while notifier.stats["webhook[0]"]["retries"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        receiver = Receiver(port)  # the receiver comes back
        assert notifier.flush(15)
    finally:
        notifier.stop()
        if receiver:
            receiver.stop()
    assert receiver is not None and len(receiver.posts) == 1
    assert notifier.stats["webhook[0]"]["sent"] == 1


def test_webhook_server_errors_are_retried_client_errors_are_not() -> None:
    port = free_port()
    receiver = Receiver(port, status=503)
    notifier = Notifier(hook_settings(port, retries=2))
    notifier.start()
    try:
        notifier.notify("opened", alert())
        assert notifier.flush(10)
        assert len(receiver.posts) == 3 and notifier.stats["webhook[0]"]["failed"] == 1
        receiver.status = 404
        notifier.notify("closed", alert(closed_at=OPENED))
        assert notifier.flush(10)
        assert len(receiver.posts) == 4 and notifier.stats["webhook[0]"]["failed"] == 2
    finally:
        notifier.stop()
        receiver.stop()


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    settings = hook_settings(free_port(), retries=0)
    notifier = Notifier(settings.model_copy(update={"queue_size": 2}))  # not started
    for i in range(5):
        notifier.notify("opened", alert(id=i))
    assert notifier.stats["webhook[0]"]["dropped"] == 3


def test_messages_read_well_without_a_value() -> None:
    code = alert(rule="trouble_code", title_fr="nouveau code défaut P0301", value_at_open=None,
                 last_value=None, unit="", severity="warning")
    assert subject("opened", code) == "[Médicobus] perche-1 : nouveau code défaut P0301"
    from zoneinfo import ZoneInfo

    text = body("closed", code.__class__(**{**code.__dict__, "closed_at": OPENED}),
                ZoneInfo("Europe/Paris"), "https://flotte.example/vehicles/perche-1")
    assert "Close le 23/11/2026 à 10:12" in text
    assert "https://flotte.example/vehicles/perche-1" in text


# -- from the engine to a mailbox ----------------------------------------------------------


def test_a_fridge_excursion_is_mailed_on_open_and_close(
        tmp_path: Path, smtp: tuple[Inbox, int], certificate: tuple[Path, Path]) -> None:
    inbox, port = smtp
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    clock = ManualClock(start)
    store, state = Store(tmp_path / "g.db"), LiveState()
    notifier = Notifier(mail_settings(port, certificate[0]))
    notifier.start()
    engine = AlertEngine(DEFAULT_RULES, AlertStorage(tmp_path / "g.db"), state,
                         load_fleet(FLEET), clock, notifier)
    try:
        temps = [4.0, 9.1, 9.3, 9.2, 9.0, 6.0, 5.0, 5.0, 5.0]  # one reading every 5 min
        for i, temp in enumerate(temps):
            clock.set(start + timedelta(minutes=5 * i))
            r = contract.Reading(vehicle="perche-1", ts=clock.now(), sensor="fridge",
                                 values={"temp_c": temp})
            store.record([(r, clock.now())])
            state.apply(r, clock.now())
            engine.evaluate({"perche-1"})
        assert notifier.flush(15)
    finally:
        notifier.stop()
        engine.close()
        store.close()
    subjects = [m["Subject"] for m in inbox.wait(2)]
    # Opened when 9.1 °C had lasted 10 min (the reading then said 9.3); closed when back
    # inside 2.5-7.5 for 5 min, with the value that held then.
    assert subjects == ["[Médicobus] perche-1 : réfrigérateur hors plage (9,3 °C)",
                        "[Médicobus] perche-1 : fin d'alerte, réfrigérateur hors plage (6,0 °C)"]
