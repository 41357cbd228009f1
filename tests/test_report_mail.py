"""The monthly e-mail: last month's report goes out on the first working day of the month,
once (a second check, a restart, the days after send nothing again), late rather than never
after a ground that was down; through a real SMTP server (aiosmtpd, STARTTLS and login),
its attachments read back by pdftotext and openpyxl."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook

from ground.alerts import DEFAULT_RULES
from ground.fleet import Fleet, load_fleet
from ground.reports.mailing import MonthlyMail, first_working_day
from ground.reports.make import Reporter, ReportMail, ReportSettings
from ground.service import GroundService, GroundSettings
from medicobus.brokers import free_port
from tests.clocks import ManualClock
from tests.harness import FLEET
from tests.receivers import Inbox
from tests.simulated_month import PARIS, Month

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def month(tmp_path: Path) -> Iterator[Month]:
    m = Month(tmp_path, "2026-10", load_fleet(FLEET))
    yield m
    m.close()


def mail_settings(port: int, cert: Path) -> ReportMail:
    return ReportMail.model_validate({
        "smtp": {"host": "localhost", "port": port, "security": "starttls", "ca_file": cert,
                 "username": "rapports", "password": "s3cret", "timeout_s": 5,
                 "from_addr": "rapports@medicobus.test", "backoff_s": 0.05},
        "to": ["direction@cc-perche.test", "ars@sante.test"]})  # fmt: skip


def monthly(month: Month, mail: ReportMail, clock: ManualClock) -> MonthlyMail:
    reporter = Reporter(lambda: month.fleet, month.store, DEFAULT_RULES,
                        ReportSettings(operator="CC du Perche"), clock)
    sender = MonthlyMail(mail, reporter, month.dir / "ground.db", clock)
    sender.start()
    return sender


def test_the_first_working_day(month: Month) -> None:
    fleet: Fleet = month.fleet
    assert first_working_day(2026, 11, fleet) == date(2026, 11, 2)  # Sunday the 1st, Toussaint
    assert first_working_day(2027, 1, fleet) == date(2027, 1, 4)  # Friday the 1st: new year
    assert first_working_day(2026, 5, fleet) == date(2026, 5, 4)  # Friday the 1st: May Day
    assert first_working_day(2026, 12, fleet) == date(2026, 12, 1)


def test_last_months_report_goes_out_once(month: Month, smtp: tuple[Inbox, int],
                                          certificate: tuple[Path, Path]) -> None:
    inbox, port = smtp
    clock = ManualClock(datetime(2026, 11, 1, 9, 0, tzinfo=PARIS))
    sender = monthly(month, mail_settings(port, certificate[0]), clock)
    assert sender.check() is None  # Sunday, and a public holiday
    clock.set(datetime(2026, 11, 2, 0, 30, tzinfo=PARIS))  # Monday, 23:30 UTC the day before
    assert sender.check() == "2026-10"
    assert sender.check() is None
    [mail] = inbox.wait(1)
    assert inbox.messages[0][0].rcpt_tos == ["direction@cc-perche.test", "ars@sante.test"]
    assert mail["Subject"] == "[Médicobus] Rapport d'activité octobre 2026 — CC du Perche"
    t = month.report.total
    assert f"{t.planned} visites prévues, {t.held} tenues, {t.cancelled} annulées" in (
        mail.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    files = {a.get_filename(): a.get_content() for a in mail.iter_attachments()}
    assert set(files) == {"rapport-activite-2026-10.pdf", "rapport-activite-2026-10.xlsx"}
    text = subprocess.run(["pdftotext", "-", "-"], input=files["rapport-activite-2026-10.pdf"],
                          capture_output=True, check=True).stdout.decode()
    assert "CC du Perche" in text and "octobre 2026" in text
    book = load_workbook(io.BytesIO(files["rapport-activite-2026-10.xlsx"]))
    assert book.sheetnames == ["communes", "vehicules", "annulations", "excursions"]
    sender.worker.wait_idle(10)
    sender.stop()
    assert_only(month, port, certificate, inbox, datetime(2026, 11, 2, 10, 0, tzinfo=PARIS))
    assert_only(month, port, certificate, inbox, datetime(2026, 11, 20, 10, 0, tzinfo=PARIS))


def assert_only(month: Month, port: int, certificate: tuple[Path, Path], inbox: Inbox,
                now: datetime) -> None:
    """A ground started again at `now`: nothing more is sent."""
    again = monthly(month, mail_settings(port, certificate[0]), ManualClock(now))
    assert again.check() is None and again.sent() == {"2026-10": "sent"}
    again.worker.wait_idle(5)
    again.stop()
    assert len(inbox.messages) == 1


def test_a_mail_not_sent_at_a_stop_goes_at_the_next_start(
        month: Month, smtp: tuple[Inbox, int], certificate: tuple[Path, Path]) -> None:
    inbox, port = smtp
    # The ground was down on the 2nd: it starts on the 5th, with its mail server unreachable.
    clock = ManualClock(datetime(2026, 11, 5, 9, 0, tzinfo=PARIS))
    down = monthly(month, mail_settings(free_port(), certificate[0]), clock)
    assert down.check() == "2026-10"
    down.stop()  # stopped while it retries
    assert inbox.messages == []
    up = monthly(month, mail_settings(port, certificate[0]), clock)
    assert up.sent() == {"2026-10": "pending"}
    inbox.wait(1)
    up.worker.wait_idle(10)
    assert up.check() is None and up.sent() == {"2026-10": "sent"}
    up.stop()
    assert len(inbox.messages) == 1


def test_the_grounds_configuration_turns_it_on(tmp_path: Path,
                                              certificate: tuple[Path, Path]) -> None:
    settings = GroundSettings.model_validate({
        "fleet": FLEET, "database": tmp_path / "ground.db",
        "reports": {"operator": "CC du Perche",
                    "email": mail_settings(free_port(), certificate[0]).model_dump()}})
    service = GroundService(settings, ManualClock(datetime(2026, 11, 2, tzinfo=PARIS)))
    assert service.monthly is not None
    assert service.monthly.settings.to == ["direction@cc-perche.test", "ars@sante.test"]
    service.monthly.stop()
    for part in (service.alerts, service.tournee, service.store):
        part.close()
