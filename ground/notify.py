"""Telling people about alerts: webhooks (JSON over HTTP) and e-mail (SMTP).

The alert engine runs on the pipeline's thread, so nothing here may block it or raise into it:
`notify` only puts the message on each channel's queue; one worker thread per channel
sends, retrying with backoff (a receiver down for a minute still gets the message), and
failures are logged and counted. A slow mail server never delays a webhook.

The delivery itself (`Worker`, `Job`, `send_mail`, `post_json`) serves every message the
ground sends: the alerts here, the notices to the mairies (ground.mairies).
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import queue
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


class Delivery(BaseModel):
    """How hard one channel tries: each attempt's timeout, and the retries after it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    retries: Annotated[int, Field(ge=0, le=50)] = 5  # attempts after the first
    backoff_s: Annotated[float, Field(ge=0, le=3600)] = 2.0  # doubles at each retry...
    backoff_max_s: Annotated[float, Field(ge=0, le=3600)] = 300.0  # ...up to this


class _Channel(Delivery):
    """Which alert events a channel is told of."""

    events: list[Event] = list(EVENTS)
    min_severity: Severity = "info"


class WebhookSettings(_Channel):
    url: str
    headers: dict[str, str] = {}  # e.g. Authorization = "Bearer ..."

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value


Address = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]


class SmtpServer(Delivery, Credentials):
    """The mail server messages go out through, and the address they come from."""

    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    security: Literal["starttls", "ssl", "none"] = "starttls"
    ca_file: Path | None = None  # None: the system's trusted authorities
    from_addr: Address


class EmailSettings(_Channel, SmtpServer):
    to: Annotated[list[Address], Field(min_length=1)]
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


Outcome = Literal["sent", "refused", "failed"]


def _settled_ignored(outcome: Outcome) -> None:
    pass


@dataclass(frozen=True)
class Job:
    """One message to deliver. `send` makes one attempt (raising PermanentError when
    retrying will not help); `settled` is told how it ended, once: not when the worker
    stopped first (shutdown), so that the message stays to be sent."""

    label: str  # for the logs: "alert 7 opened"
    send: Callable[[], None]
    settled: Callable[[Outcome], None] = _settled_ignored


class Worker:
    """One channel: a bounded queue and a thread that sends its jobs in order, with
    retries and backoff."""

    def __init__(self, name: str, settings: Delivery, queue_size: int) -> None:
        self.name = name
        self.settings = settings
        self.stats = {"queued": 0, "sent": 0, "retries": 0, "failed": 0, "dropped": 0}
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._busy = 0

    def put(self, job: Job) -> bool:
        """Queue the job; False (counted, logged) when the queue is full: never blocks."""
        with self._idle:
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                self.stats["dropped"] += 1
                log.error("%s: queue full, %s dropped", self.name, job.label)
                return False
            self._busy += 1
            self.stats["queued"] += 1
        return True

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
            log.warning("%s: %d messages not sent at shutdown", self.name, left)

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
                job = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                outcome = self._deliver(job)
                if outcome is not None:
                    job.settled(outcome)
            except Exception:  # a bad `settled` must not end the channel
                log.exception("%s: %s", self.name, job.label)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _deliver(self, job: Job) -> Outcome | None:
        """How the job ended; None if the worker was stopped before it did."""
        s = self.settings
        for attempt in range(s.retries + 1):
            try:
                job.send()
                self.stats["sent"] += 1
                return "sent"
            except PermanentError as exc:
                log.error("%s: %s refused: %s", self.name, job.label, exc)
                self.stats["failed"] += 1
                return "refused"
            except Exception as exc:  # network, timeouts, 5xx: worth another try
                if attempt == s.retries:
                    log.error("%s: %s not delivered after %d attempts: %s", self.name,
                              job.label, attempt + 1, exc)
                    break
                delay = min(s.backoff_s * 2**attempt, s.backoff_max_s)
                log.warning("%s: %s failed (%s); retry in %.1f s", self.name, job.label, exc,
                            delay)
                self.stats["retries"] += 1
                if self._stop.wait(delay):
                    log.warning("%s: %s left unsent at shutdown", self.name, job.label)
                    return None
        self.stats["failed"] += 1
        return "failed"


def post_json(url: str, data: Mapping[str, Any], headers: Mapping[str, str],
              timeout_s: float) -> None:
    """POST `data` as JSON; PermanentError for an answer that retrying will not change."""
    request = urllib.request.Request(
        url, data=json.dumps(data, ensure_ascii=False).encode(), method="POST",
        headers={"Content-Type": "application/json; charset=utf-8",
                 "User-Agent": "medicobus-ground", **headers})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        # 408, 429 and 5xx may pass later; other 4xx say the request is wrong.
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            raise PermanentError(f"HTTP {exc.code}") from None
        raise


def send_mail(server: SmtpServer, message: EmailMessage) -> None:
    """Send `message` (its Subject, To and content set) through `server`, from its
    address; PermanentError when the server refuses the sender or every recipient."""
    message["From"] = server.from_addr
    message["Date"] = email.utils.formatdate(localtime=False)
    if "Message-ID" not in message:
        message["Message-ID"] = email.utils.make_msgid(domain="medicobus")
    context = ssl.create_default_context(
        cafile=str(server.ca_file) if server.ca_file else None)
    smtp: smtplib.SMTP
    if server.security == "ssl":
        smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=server.timeout_s,
                                context=context)
    else:
        smtp = smtplib.SMTP(server.host, server.port, timeout=server.timeout_s)
    with smtp:
        if server.security == "starttls":
            smtp.starttls(context=context)
        if server.username is not None:
            smtp.login(server.username, server.secret() or "")
        try:
            smtp.send_message(message)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
            raise PermanentError(str(exc)) from None


class Notifier:
    """Sends alert events to the configured channels; `notify` never blocks nor raises."""

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings
        self.zone = ZoneInfo(settings.timezone)
        self._channels: list[tuple[_Channel, Worker, Callable[[Event, Alert], None]]] = []
        for i, hook in enumerate(settings.webhooks):
            self._channels.append((hook, Worker(f"webhook[{i}]", hook, settings.queue_size),
                                   functools.partial(self._post, hook)))
        if settings.email is not None:
            mail = settings.email
            self._channels.append((mail, Worker("email", mail, settings.queue_size),
                                   functools.partial(self._mail, mail)))

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return {w.name: dict(w.stats) for _, w, _ in self._channels}

    def start(self) -> None:
        for _, w, _ in self._channels:
            w.start()

    def stop(self, timeout: float = 5.0) -> None:
        for _, w, _ in self._channels:
            w.stop(timeout)

    def notify(self, event: Event, alert: Alert) -> None:
        try:
            for channel, worker, send in self._channels:
                if (event in channel.events
                        and _RANK.get(alert.severity, 0) >= _RANK[channel.min_severity]):
                    worker.put(Job(f"alert {alert.id} {event}",
                                   functools.partial(send, event, alert)))
        except Exception:  # the engine's thread is ingest's: nothing may escape to it
            log.exception("could not queue the notification of alert %d", alert.id)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued notification was sent or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        return all(w.wait_idle(max(0.0, deadline - time.monotonic()))
                   for _, w, _ in self._channels)

    def _post(self, hook: WebhookSettings, event: Event, alert: Alert) -> None:
        post_json(hook.url, payload(event, alert), hook.headers, hook.timeout_s)

    def _mail(self, mail: EmailSettings, event: Event, alert: Alert) -> None:
        message = EmailMessage()
        message["Subject"] = subject(event, alert)
        message["To"] = ", ".join(mail.to)
        message.set_content(body(event, alert, self.zone, self.settings.dashboard_url))
        send_mail(mail, message)
