"""The monthly e-mail: last month's activity report to the configured recipients (the
operator's office, the funders), on the first working day of the month.

Once: before anything is sent, the month is a row of `report_mails` in the ground's
database, so a restart, a second check the same day or the days after send nothing again.
A ground that was down on the first working day sends it at its next start in the month,
late rather than never. A message queued when the ground stopped is queued again at the
next start (the worker retries with backoff meanwhile); one the server took just before a
crash, not yet marked sent, goes again: at least once, and in the usual case once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import date, timedelta
from email.message import EmailMessage
from pathlib import Path

from ground.fleet import Fleet, public_holiday
from ground.notify import Job, Outcome, Worker, send_mail
from ground.reports.activity import Period
from ground.reports.make import Reporter, ReportMail
from ground.reports.pdf import period_fr
from medicobus.clock import Clock
from medicobus.storage import Database, Migrations, open_database, run_script, write_transaction

log = logging.getLogger(__name__)

migrations = Migrations("ground_reports")


@migrations()
def m001_report_mails(db: Database) -> None:
    run_script(db, """
CREATE TABLE report_mails (
    month TEXT PRIMARY KEY,  -- YYYY-MM: the month reported
    status TEXT NOT NULL,    -- pending, sent, refused, failed
    queued_at TEXT NOT NULL, settled_at TEXT);
""")


def first_working_day(year: int, month: int, fleet: Fleet) -> date:
    """The month's first day that is neither a weekend nor a public holiday (France's, and
    the fleet's subdivision's)."""
    day = date(year, month, 1)
    while day.weekday() >= 5 or public_holiday(day, fleet.holidays_subdivision) is not None:
        day += timedelta(days=1)
    return day


def previous_month(day: date) -> str:
    return f"{(day.replace(day=1) - timedelta(days=1)):%Y-%m}"


class MonthlyMail:
    def __init__(self, settings: ReportMail, reporter: Reporter, database: Path | str,
                 clock: Clock) -> None:
        self.settings = settings
        self.reporter = reporter
        self.clock = clock
        self.db = open_database(database, migrations, synchronous="FULL", clock=clock)
        self.worker = Worker("report-mail", settings.smtp, queue_size=24)
        self._done: str | None = None  # the month this process saw queued already

    def start(self) -> None:
        self.worker.start()
        for (month,) in self.db.execute(
                "SELECT month FROM report_mails WHERE status = 'pending'").fetchall():
            self._queue(month)  # queued when the ground stopped: not sent yet

    def stop(self) -> None:
        self.worker.stop(timeout=5.0)
        self.db.close()

    def check(self) -> str | None:
        """On the service's timer: queue last month's report if today is its day (or
        later in the month) and it was never queued; the month queued, or None."""
        fleet = self.reporter.fleet()
        today = self.clock.now().astimezone(fleet.zone).date()
        if today < first_working_day(today.year, today.month, fleet):
            return None
        month = previous_month(today)
        if month == self._done:
            return None
        with write_transaction(self.db):
            fresh = self.db.execute(
                "INSERT OR IGNORE INTO report_mails (month, status, queued_at) "
                "VALUES (?, 'pending', ?)", [month, self.clock.now().isoformat()]).rowcount
        self._done = month
        if not fresh:
            return None
        self._queue(month)
        return month

    def _queue(self, month: str) -> None:
        self.worker.put(Job(f"activity report {month}",
                            functools.partial(self._send, functools.cache(
                                functools.partial(self.message, month))),
                            functools.partial(self._settled, month)))

    def _send(self, message: Callable[[], EmailMessage]) -> None:
        send_mail(self.settings.smtp, message())

    def _settled(self, month: str, outcome: Outcome) -> None:
        with write_transaction(self.db):
            self.db.execute("UPDATE report_mails SET status = ?, settled_at = ? WHERE month = ?",
                            [outcome, self.clock.now().isoformat(), month])
        if outcome != "sent":
            log.error("the activity report of %s was not sent (%s)", month, outcome)

    def message(self, month: str) -> EmailMessage:
        """The e-mail of `month`'s report, its files attached (made once per message: a
        retry sends the same)."""
        period = Period.month(month, self.reporter.fleet().zone)
        made = [self.reporter.make(period, fmt) for fmt in self.settings.formats]
        report = made[0].report
        fr, en = period_fr(report)
        operator = self.reporter.settings.operator
        t = report.total
        message = EmailMessage()
        message["Subject"] = f"[Médicobus] Rapport d'activité {fr} — {operator}"
        message["To"] = ", ".join(self.settings.to)
        message.set_content(
            f"Bonjour,\n\nVoici le rapport d'activité de {fr} ({operator}) : "
            f"{t.planned} visites prévues, {t.held} tenues, {t.cancelled} annulées.\n"
            "Le détail par commune et par véhicule est en pièce jointe ; les nombres de moins "
            f"de {self.reporter.settings.min_count} patients y sont masqués.\n\n"
            f"Activity report for {en}: {t.planned} visits planned, {t.held} held, "
            f"{t.cancelled} cancelled; details attached.\n\n-- \nMédicobus\n")
        for m in made:
            main, sub = m.media.split("/")
            message.add_attachment(m.content, maintype=main, subtype=sub, filename=m.name)
        return message

    def sent(self) -> dict[str, str]:
        """Each month's mail and where it stands."""
        return dict(self.db.execute("SELECT month, status FROM report_mails").fetchall())
