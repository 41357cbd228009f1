"""Telling people about alerts: webhooks (JSON over HTTP) and e-mail (SMTP).

The alert engine runs on the pipeline's thread, so nothing here may block it or raise into it:
`notify` only puts the message on each channel's queue; one worker thread per channel
sends, retrying with backoff (a receiver down for a minute still gets the message), and
failures are logged and counted. A slow mail server never delays a webhook.
"""

from __future__ import annotations

import email.utils
import json
import logging
import queue
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ground.alerts import Alert, Event, Severity
from medicobus.settings import Credentials

log = logging.getLogger(__name__)

EVENTS: list[Event] = ["opened", "acknowledged", "closed"]
_RANK = {"info": 0, "warning": 1, "critical": 2}
_SEVERITY_FR = {"info": "information", "warning": "avertissement", "critical": "critique"}


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    events: list[Event] = list(EVENTS)
    min_severity: Severity = "info"
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    retries: Annotated[int, Field(ge=0, le=50)] = 5  # attempts after the first
    backoff_s: Annotated[float, Field(ge=0, le=3600)] = 2.0  # doubles at each retry...
    backoff_max_s: Annotated[float, Field(ge=0, le=3600)] = 300.0  # ...up to this


class WebhookSettings(_Channel):
    url: str
    headers: dict[str, str] = {}  # e.g. Authorization = "Bearer ..."

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value


class EmailSettings(_Channel, Credentials):
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    security: Literal["starttls", "ssl", "none"] = "starttls"
    ca_file: Path | None = None  # None: the system's trusted authorities
    from_addr: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
    to: Annotated[list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]],
                  Field(min_length=1)]
    min_severity: Severity = "warning"  # mailboxes fill up: not every "info"


class NotifySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    webhooks: list[WebhookSettings] = []
    email: EmailSettings | None = None
    timezone: str = "Europe/Paris"  # times in messages are local: people read them
    dashboard_url: str | None = None  # put in messages so the reader can click through
    queue_size: Annotated[int, Field(ge=1, le=100_000)] = 1000


# -- messages ------------------------------------------------------------------------------


def number_fr(value: float) -> str:
    return f"{value:.1f}".replace(".", ",")


def _value(alert: Alert, value: float | None) -> str:
    if value is None:
        return ""
    return f"{number_fr(value)} {alert.unit}".strip()


def subject(event: Event, alert: Alert) -> str:
    """"[Médicobus] perche-1 : réfrigérateur hors plage (9,1 °C)"."""
    head = f"[Médicobus] {alert.vehicle} : "
    if event == "opened":
        value = _value(alert, alert.value_at_open)
        return head + alert.title_fr + (f" ({value})" if value else "")
    if event == "acknowledged":
        return head + f"{alert.title_fr}, pris en charge par {alert.acknowledged_by}"
    value = _value(alert, alert.last_value)
    return head + f"fin d'alerte, {alert.title_fr}" + (f" ({value})" if value else "")


def body(event: Event, alert: Alert, zone: ZoneInfo, link: str | None = None) -> str:
    def at(t: datetime) -> str:
        return t.astimezone(zone).strftime("%d/%m/%Y à %H:%M")

    severity = _SEVERITY_FR.get(alert.severity, alert.severity)
    lines = [subject(event, alert).removeprefix("[Médicobus] "), "",
             f"Véhicule : {alert.vehicle}",
             f"Alerte : {alert.title_fr} (gravité : {severity})",
             f"Ouverte le {at(alert.opened_at)}"]
    if alert.value_at_open is not None:
        lines.append(f"Valeur à l'ouverture : {_value(alert, alert.value_at_open)}")
    if alert.acknowledged_by and alert.acknowledged_at:
        lines.append(f"Prise en charge par {alert.acknowledged_by} le "
                     f"{at(alert.acknowledged_at)}")
    if alert.closed_at:
        lines.append(f"Close le {at(alert.closed_at)}")
    if alert.last_value is not None and event != "opened":
        lines.append(f"Dernière valeur : {_value(alert, alert.last_value)}")
    if link:
        lines += ["", link]
    lines += ["", f"({alert.vehicle}: {alert.title_en}, {event}; alert #{alert.id})"]
    return "\n".join(lines) + "\n"


def payload(event: Event, alert: Alert) -> dict[str, Any]:
    """The webhook's JSON: `text` for chat tools (Mattermost, Slack), `alert` for programs."""
    fields = {k: (v.isoformat() if isinstance(v, datetime) else v)
              for k, v in alert.__dict__.items()}
    return {"event": event, "text": subject(event, alert), "alert": fields}


# -- delivery ------------------------------------------------------------------------------


class PermanentError(Exception):
    """A refusal that retrying will not change (a 4xx, a rejected address)."""


class _Worker:
    """One channel: a bounded queue and a thread that sends with retries."""

    def __init__(self, name: str, settings: _Channel, send: Callable[[Event, Alert], None],
                 queue_size: int) -> None:
        self.name = name
        self.settings = settings
        self.send = send
        self.stats = {"queued": 0, "sent": 0, "retries": 0, "failed": 0, "dropped": 0}
        self._queue: queue.Queue[tuple[Event, Alert]] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._busy = 0

    def wants(self, event: Event, alert: Alert) -> bool:
        return (event in self.settings.events
                and _RANK.get(alert.severity, 0) >= _RANK[self.settings.min_severity])

    def put(self, event: Event, alert: Alert) -> None:
        with self._idle:
            try:
                self._queue.put_nowait((event, alert))
            except queue.Full:  # never block the engine: drop, count and say so
                self.stats["dropped"] += 1
                log.error("%s: queue full, notification of alert %d dropped", self.name,
                          alert.id)
                return
            self._busy += 1
            self.stats["queued"] += 1

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"notify-{self.name}",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        left = self._queue.qsize()
        if left:
            log.warning("%s: %d notifications not sent at shutdown", self.name, left)

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                event, alert = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._deliver(event, alert)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _deliver(self, event: Event, alert: Alert) -> None:
        s = self.settings
        for attempt in range(s.retries + 1):
            try:
                self.send(event, alert)
                self.stats["sent"] += 1
                return
            except PermanentError as exc:
                log.error("%s: alert %d %s refused: %s", self.name, alert.id, event, exc)
                break
            except Exception as exc:  # network, timeouts, 5xx: worth another try
                if attempt == s.retries:
                    log.error("%s: alert %d %s not delivered after %d attempts: %s",
                              self.name, alert.id, event, attempt + 1, exc)
                    break
                delay = min(s.backoff_s * 2**attempt, s.backoff_max_s)
                log.warning("%s: alert %d %s failed (%s); retry in %.1f s", self.name,
                            alert.id, event, exc, delay)
                self.stats["retries"] += 1
                if self._stop.wait(delay):
                    break
        self.stats["failed"] += 1


class Notifier:
    """Sends alert events to the configured channels; `notify` never blocks nor raises."""

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings
        self.zone = ZoneInfo(settings.timezone)
        self._workers: list[_Worker] = []
        for i, hook in enumerate(settings.webhooks):
            self._workers.append(_Worker(f"webhook[{i}]", hook, self._poster(hook),
                                         settings.queue_size))
        if settings.email is not None:
            self._workers.append(_Worker("email", settings.email,
                                         self._mailer(settings.email), settings.queue_size))

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return {w.name: dict(w.stats) for w in self._workers}

    def start(self) -> None:
        for w in self._workers:
            w.start()

    def stop(self, timeout: float = 5.0) -> None:
        for w in self._workers:
            w.stop(timeout)

    def notify(self, event: Event, alert: Alert) -> None:
        try:
            for w in self._workers:
                if w.wants(event, alert):
                    w.put(event, alert)
        except Exception:  # the engine's thread is ingest's: nothing may escape to it
            log.exception("could not queue the notification of alert %d", alert.id)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued notification was sent or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        return all(w.wait_idle(max(0.0, deadline - time.monotonic())) for w in self._workers)

    def _poster(self, hook: WebhookSettings) -> Callable[[Event, Alert], None]:
        def post(event: Event, alert: Alert) -> None:
            data = json.dumps(payload(event, alert), ensure_ascii=False).encode()
            request = urllib.request.Request(
                hook.url, data=data, method="POST",
                headers={"Content-Type": "application/json; charset=utf-8",
                         "User-Agent": "medicobus-ground", **hook.headers})
            try:
                with urllib.request.urlopen(request, timeout=hook.timeout_s) as response:
                    response.read()
            except urllib.error.HTTPError as exc:
                # 408, 429 and 5xx may pass later; other 4xx say the request is wrong.
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    raise PermanentError(f"HTTP {exc.code}") from None
                raise

        return post

    def _mailer(self, mail: EmailSettings) -> Callable[[Event, Alert], None]:
        def send(event: Event, alert: Alert) -> None:
            message = EmailMessage()
            message["Subject"] = subject(event, alert)
            message["From"] = mail.from_addr
            message["To"] = ", ".join(mail.to)
            message["Date"] = email.utils.formatdate(localtime=False)
            message["Message-ID"] = email.utils.make_msgid(domain="medicobus")
            message.set_content(body(event, alert, self.zone, self.settings.dashboard_url))
            context = ssl.create_default_context(
                cafile=str(mail.ca_file) if mail.ca_file else None)
            smtp: smtplib.SMTP
            if mail.security == "ssl":
                smtp = smtplib.SMTP_SSL(mail.host, mail.port, timeout=mail.timeout_s,
                                        context=context)
            else:
                smtp = smtplib.SMTP(mail.host, mail.port, timeout=mail.timeout_s)
            with smtp:
                if mail.security == "starttls":
                    smtp.starttls(context=context)
                if mail.username is not None:
                    smtp.login(mail.username, mail.secret() or "")
                try:
                    smtp.send_message(message)
                except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
                    raise PermanentError(str(exc)) from None

        return send
