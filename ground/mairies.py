"""Telling the mairies: a visit cancelled, moved, added or restored, or late on the day.

Each contact of a commune (an e-mail address, a webhook) gets one message in French per
change: for the mairie, what changed (the old and new date, hours and place), why, and the
link to the commune's live page; and a short text ready to relay to the residents through
apps such as PanneauPocket or IntraMuros, which have no API to push to (at most 280
characters, plain). Dates are written in French (Babel), hours in the fleet's zone.

Delivery is ground.notify's: a worker per channel (one for the mail server, one per webhook
URL: a mairie's receiver that is down never holds back another's), retries with backoff, a
refusal (4xx, rejected address) not retried.

No duplicates. Every message is first a row of `mairie_notices` in the ground's database
(its own migration set). A notice is a duplicate, and sends nothing, when the latest message
to the same contact about the same visit and topic (its plan; or its delay) says the same
(same digest: kind, new slot, reason; or the delay's grade) and was not given up: so the
same change saved twice, or told again after a restart, sends nothing, a second, different
move sends again, and a move back then forth again is told each time (the mairie then
knows the latest, not an older one).

A row is `pending` until its worker settles it: `sent` once delivered, `refused` when the
receiver refused it for good (the same again would be refused too), `failed` when the
retries ran out or `dropped` when the queue was full (the same notice told again is then
sent again). A message still pending when the ground stops (queued, or waiting for a retry)
stays pending and is queued again at the next start: none is lost, and one delivered just
before a crash, not yet marked, is sent a second time (at least once, never silently
lost). A mail's Message-ID is made from its row, so a mailbox shows such a repeat as one.
Settled rows are kept KEEP_DAYS, pruned at start.
A webhook's headers (a token) are kept in the row only while it is pending.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ground.board import Board
from ground.fleet import Contact, DatedVisit, Fleet, parse_visit_id, visits_on
from ground.notify import Delivery, Job, Outcome, SmtpServer, Worker, post_json, send_mail
from ground.precision import NOT_KNOWN, Claim, Said
from ground.tournee import Changed
from ground.views import VisitStatus
from ground.web.format import FR, day_label_fr, half_label
from medicobus.clock import Clock
from medicobus.storage import Database, Migrations, open_database, run_script

log = logging.getLogger(__name__)

Kind = Literal["cancelled", "moved", "added", "restored", "delayed"]
RELAY_MAX = 280  # what a resident's app shows whole (PanneauPocket, IntraMuros, a tweet)
FOLLOWING_DAYS = 42  # how far the next visit is looked for, after a cancellation
KEEP_DAYS = 400  # settled messages kept that long: the dedup of a change a year old is moot
_NOT_YET = (VisitStatus.PLANNED, VisitStatus.EN_ROUTE, VisitStatus.LATE)
_KNOWN = ("pending", "sent", "refused")  # what the mairie has, or will have, been told
_KNOWN_SQL = "('pending', 'sent', 'refused')"


class MairieSettings(BaseModel):
    """The [mairies] table: how the mairies' contacts are written to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    smtp: SmtpServer | None = None  # without it, e-mail contacts are not written to (logged)
    webhook: Delivery = Delivery()  # each attempt's timeout and the retries, for webhooks
    public_url: str | None = None  # the public pages' address: "{public_url}/communes/{insee}"
    delay_threshold_min: Annotated[int, Field(ge=1, le=240)] = 15
    queue_size: Annotated[int, Field(ge=1, le=100_000)] = 1000

    @field_validator("public_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("public_url must start with http:// or https://")
        return value.rstrip("/") if value else value


# -- what a notice says -------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """When and where a visit is (aware datetimes)."""

    arrive: datetime
    depart: datetime
    place: str = ""

    @classmethod
    def of(cls, visit: DatedVisit) -> Slot:
        return cls(visit.arrive, visit.depart, visit.stop.place)


@dataclass(frozen=True)
class Notice:
    """One change of one visit, to tell the contacts of its commune."""

    kind: Kind
    visit: str  # "2027-03-09/noce/am"
    commune: str
    insee: str
    vehicle_name: str
    before: Slot | None  # as it was planned (None: an added or restored visit)
    after: Slot | None  # as it now is (None: cancelled); for a delay, the forecast
    contacts: tuple[Contact, ...]
    reason: str = ""
    delay_min: int = 0  # for "delayed"
    claim: Claim | None = None  # for "delayed": what may be told of the forecast arrival
    following: Slot | None = None  # the next visit held there, said with a cancellation


def day_fr(moment: datetime, zone: ZoneInfo, year: bool = False) -> str:
    """'mardi 9 mars' (with 'mardi 9 mars 2027'), in `zone`."""
    day = moment.astimezone(zone).date()
    return f"{day_label_fr(day)} {day.year}" if year else day_label_fr(day)


def time_fr(moment: datetime, zone: ZoneInfo) -> str:
    """'8 h 30', '14 h': the hour as French notices write it, in `zone`."""
    local = moment.astimezone(zone)
    pattern = "H 'h'" if local.minute == 0 else "H 'h' mm"
    return format_datetime(local, pattern, tzinfo=local.tzinfo, locale=FR)


def claim_fr(claim: Claim, zone: ZoneInfo) -> str:
    """'9 h 07', 'vers 9 h 05', 'entre 9 h et 9 h 20': the arrival as precisely as the
    record allows (ground.precision). Read later than it is written, a notice says no
    "now": a range begun already is "d'ici 9 h 20", soon is "peu après 9 h 05"."""
    start, end = time_fr(claim.earliest, zone), time_fr(claim.latest, zone)
    return {Said.MINUTE: start, Said.AROUND: f"vers {start}",
            Said.RANGE: f"entre {start} et {end}", Said.BY: f"d'ici {end}",
            Said.SOON: f"peu après {start}"}[claim.said]


def _hours(slot: Slot, zone: ZoneInfo) -> str:
    return f"de {time_fr(slot.arrive, zone)} à {time_fr(slot.depart, zone)}"


def _slot_fr(slot: Slot, zone: ZoneInfo) -> str:
    """'mardi 9 mars 2027, de 8 h 30 à 12 h, Place de l'église'."""
    text = f"{day_fr(slot.arrive, zone, year=True)}, {_hours(slot, zone)}"
    return f"{text}, {slot.place}" if slot.place else text


def _half(notice: Notice) -> str:
    return half_label(parse_visit_id(notice.visit)[2])


def _planned(notice: Notice, zone: ZoneInfo, year: bool = False) -> str:
    """'mardi 9 mars (matin)', the visit as it was planned."""
    when = notice.before or notice.after
    assert when is not None
    return f"{day_fr(when.arrive, zone, year)} ({_half(notice)})"


def _only_place(notice: Notice) -> bool:
    b, a = notice.before, notice.after
    return b is not None and a is not None and (b.arrive, b.depart) == (a.arrive, a.depart)


def relay_text(notice: Notice, zone: ZoneInfo) -> str:
    """The residents' short text, at most RELAY_MAX characters: the reason is shortened
    first, the rest only if it must."""

    def build(reason: str) -> str:
        why = f" ({reason})" if reason else ""
        n, c, a, b = notice, notice.commune, notice.after, notice.before
        head = f"Médicobus : la visite du {_planned(n, zone)} à {c}"
        if n.kind == "cancelled":
            text = f"{head} est annulée{why}."
            if n.following is not None:
                f = n.following
                text += f" Prochaine visite : {day_fr(f.arrive, zone)}, {time_fr(f.arrive, zone)}."
            return text
        assert a is not None
        where = f", {a.place}" if a.place and (b is None or a.place != b.place) else ""
        if n.kind == "moved" and _only_place(n):
            return f"{head} change de lieu : {a.place}{why}."
        if n.kind == "moved":
            return (f"{head} est déplacée au {day_fr(a.arrive, zone)}, {_hours(a, zone)}"
                    f"{where}{why}.")
        if n.kind == "added":
            return (f"Médicobus : visite supplémentaire à {c} le {day_fr(a.arrive, zone)}, "
                    f"{_hours(a, zone)}{where}{why}.")
        if n.kind == "restored":
            return f"{head} est finalement maintenue, {_hours(a, zone)}{where}{why}."
        assert b is not None and n.claim is not None
        told = claim_fr(n.claim, zone)
        return (f"Médicobus : retard d'environ {n.delay_min} min à {c} ce "
                f"{day_fr(b.arrive, zone)} : arrivée prévue "
                f"{'à ' if n.claim.said is Said.MINUTE else ''}{told} "
                f"au lieu de {time_fr(b.arrive, zone)}{why}.")

    reason = notice.reason.strip()
    text = build(reason)
    over = len(text) - RELAY_MAX
    if over > 0 and len(reason) > over + 1:
        text = build(reason[:len(reason) - over - 1].rstrip() + "…")
    elif over > 0:
        text = build("")
    return text if len(text) <= RELAY_MAX else text[:RELAY_MAX - 1] + "…"


def subject(notice: Notice, zone: ZoneInfo) -> str:
    """'[Médicobus] Nocé : visite du mardi 9 mars (matin) annulée'."""
    n, head = notice, f"[Médicobus] {notice.commune} : "
    if n.kind == "cancelled":
        return head + f"visite du {_planned(n, zone)} annulée"
    assert n.after is not None
    if n.kind == "moved" and _only_place(n):
        return head + f"visite du {_planned(n, zone)}, autre lieu"
    if n.kind == "moved":
        return head + f"visite du {_planned(n, zone)} déplacée au {day_fr(n.after.arrive, zone)}"
    if n.kind == "added":
        return head + f"visite supplémentaire le {day_fr(n.after.arrive, zone)}"
    if n.kind == "restored":
        return head + f"visite du {_planned(n, zone)} maintenue"
    return head + f"retard d'environ {n.delay_min} min ce {day_fr(n.after.arrive, zone)}"


_HEADLINES = {
    "cancelled": "La visite du médicobus à {commune} du {planned} est annulée.",
    "moved": "La visite du médicobus à {commune} du {planned} est déplacée.",
    "added": "Une visite supplémentaire du médicobus est prévue à {commune}.",
    "restored": "La visite du médicobus à {commune} du {planned} est finalement maintenue.",
    "delayed": "Le médicobus a environ {delay} min de retard sur son horaire à {commune}.",
}
_EN = {"cancelled": "cancelled", "moved": "moved", "added": "added", "restored": "restored",
       "delayed": "running late"}


def page_url(public_url: str | None, insee: str) -> str | None:
    return f"{public_url}/communes/{insee}" if public_url else None


def body(notice: Notice, zone: ZoneInfo, public_url: str | None = None) -> str:
    """The mairie's mail: what changed, the old and new slots, why, the live page, and the
    residents' text to copy."""
    n = notice
    lines = ["Bonjour,", "",
             _HEADLINES[n.kind].format(commune=n.commune, planned=_planned(n, zone, True),
                                       delay=n.delay_min)]  # fmt: skip
    if n.reason.strip():
        lines.append(f"Motif : {n.reason.strip()}")
    lines += ["", f"Véhicule : {n.vehicle_name}"]
    if n.kind == "delayed":
        assert n.before is not None and n.claim is not None
        lines += [f"Arrivée prévue : {day_fr(n.before.arrive, zone, True)}, "
                  f"{time_fr(n.before.arrive, zone)}",
                  f"Arrivée estimée : {claim_fr(n.claim, zone)}"]
    else:
        if n.before is not None and n.kind != "restored":
            lines.append(f"Prévue : {_slot_fr(n.before, zone)}")
        if n.after is not None:
            label = "Désormais" if n.kind == "moved" else "Visite"
            lines.append(f"{label} : {_slot_fr(n.after, zone)}")
        if n.following is not None:
            lines.append(f"Prochaine visite : {_slot_fr(n.following, zone)}")
    link = page_url(public_url, n.insee)
    if link:
        lines += ["", f"Horaires en direct : {link}"]
    lines += ["", "Texte prêt à relayer aux habitants (PanneauPocket, IntraMuros…) :",
              relay_text(n, zone), "", "--",
              "Message envoyé automatiquement par Médicobus.",
              f"(Médicobus: visit {n.visit} at {n.commune} {_EN[n.kind]}"
              + (f"; reason: {n.reason.strip()})" if n.reason.strip() else ")")]  # fmt: skip
    return "\n".join(lines) + "\n"


def _slot_json(slot: Slot | None, zone: ZoneInfo) -> dict[str, str] | None:
    if slot is None:
        return None
    return {"arrive": slot.arrive.astimezone(zone).isoformat(),
            "depart": slot.depart.astimezone(zone).isoformat(), "place": slot.place}


def payload(notice: Notice, zone: ZoneInfo, public_url: str | None = None) -> dict[str, Any]:
    """The webhook's JSON: `text` is the residents' text, `subject` the mail's."""
    n = notice
    return {"kind": n.kind, "visit": n.visit, "insee": n.insee, "commune": n.commune,
            "vehicle": n.vehicle_name, "before": _slot_json(n.before, zone),
            "after": _slot_json(n.after, zone), "reason": n.reason.strip(),
            "delay_min": n.delay_min if n.kind == "delayed" else None,
            "eta_told": None if n.claim is None else {  # as precisely as the record allows
                "said": n.claim.said.value, "from": n.claim.earliest.astimezone(zone).isoformat(),
                "to": n.claim.latest.astimezone(zone).isoformat(),
                "precision_min": n.claim.precision_min},
            "text": relay_text(n, zone), "subject": subject(n, zone),
            "url": page_url(public_url, n.insee)}  # fmt: skip


def delay_grade(delay_min: int, threshold_min: int) -> int:
    """0 under the threshold, 1 past it, 2 past twice it: a delay is told once per grade."""
    return min(2, max(0, delay_min) // threshold_min)


# -- the tournée's changes as notices -------------------------------------------------------

_KINDS: dict[str, Kind] = {"cancelled": "cancelled", "removed": "cancelled", "added": "added",
                           "restored": "restored", "moved": "moved"}


def notices_of(changed: Changed, now: datetime) -> list[Notice]:
    """The notices a change of the tournée makes: one per visit it changed that is still
    to come and has contacts; a visit that was not held and still is not (an added entry's
    visit on a holiday) is nobody's news."""
    fleet = changed.fleet
    names = {v.id: v.name for v in fleet.vehicles}
    found: list[Notice] = []
    for d in changed.differences:
        b, a = _held(d.before), _held(d.after)
        shown = d.shown
        if (b is None and a is None) or max(v.depart for v in (b, a) if v) <= now:
            continue
        if not shown.stop.contacts:
            continue
        kind = _KINDS.get(d.kind)
        if kind is None:
            log.warning("mairies: a visit %s is not told of (%s)", d.kind, d.visit)
            continue
        if kind == "moved" and b and a and Slot.of(b) == Slot.of(a):
            continue  # only its note, or the spot within the same place, changed
        reason = (d.after.cancelled.reason if d.after and d.after.cancelled
                  else changed.change.reason)  # fmt: skip
        found.append(Notice(
            kind=kind, visit=d.visit, commune=shown.stop.commune, insee=shown.stop.insee,
            vehicle_name=names.get(shown.vehicle, shown.vehicle),
            before=Slot.of(b) if b and kind != "restored" else None,
            after=Slot.of(a) if a else None, contacts=tuple(shown.stop.contacts),
            reason=reason, following=_following(fleet, b) if a is None and b else None))
    return found


def _held(visit: DatedVisit | None) -> DatedVisit | None:
    return visit if visit is not None and visit.cancelled is None else None


def _following(fleet: Fleet, cancelled: DatedVisit) -> Slot | None:
    """The next visit held at the cancelled one's stop, within FOLLOWING_DAYS."""
    for offset in range(FOLLOWING_DAYS + 1):
        day: date = cancelled.day + timedelta(days=offset)
        for v in visits_on(fleet, day, stop=cancelled.stop.id):
            if v.cancelled is None and v.id != cancelled.id and v.arrive > cancelled.arrive:
                return Slot.of(v)
    return None


# -- the sent-log -------------------------------------------------------------------------

migrations = Migrations("ground_mairies")


@migrations()
def m001_mairie_notices(db: Database) -> None:
    run_script(db, """
CREATE TABLE IF NOT EXISTS mairie_notices (
    id INTEGER PRIMARY KEY AUTOINCREMENT, visit TEXT NOT NULL, topic TEXT NOT NULL,
    kind TEXT NOT NULL, channel TEXT NOT NULL, address TEXT NOT NULL, digest TEXT NOT NULL,
    grade INTEGER NOT NULL DEFAULT 0, subject TEXT NOT NULL, body TEXT NOT NULL,
    payload TEXT NOT NULL, headers TEXT, status TEXT NOT NULL DEFAULT 'pending',
    queued_at TEXT NOT NULL, settled_at TEXT);
CREATE INDEX IF NOT EXISTS mairie_notices_latest ON mairie_notices(address, visit, topic);
CREATE INDEX IF NOT EXISTS mairie_notices_pending ON mairie_notices(status)
    WHERE status = 'pending';""")


@dataclass(frozen=True)
class SentMessage:
    """One message of the sent-log, as the console may show it."""

    id: int
    visit: str
    kind: str
    channel: Literal["email", "webhook"]
    address: str
    subject: str
    status: str  # pending, sent, refused, failed, dropped
    queued_at: datetime
    settled_at: datetime | None


@dataclass(frozen=True)
class _Message:
    id: int
    digest: str
    channel: str
    address: str
    subject: str
    body: str
    payload: dict[str, Any]
    headers: dict[str, str]


def _digest(notice: Notice, threshold_min: int) -> str:
    if notice.kind == "delayed":
        said: list[Any] = [notice.kind, delay_grade(notice.delay_min, threshold_min)]
    else:
        a = notice.after
        said = [notice.kind, notice.reason.strip(),
                None if a is None else [a.arrive.timestamp(), a.depart.timestamp(), a.place]]
    return hashlib.sha256(json.dumps(said, ensure_ascii=False).encode()).hexdigest()


def _address(contact: Contact) -> tuple[Literal["email", "webhook"], str]:
    if contact.email is not None:
        return "email", contact.email
    assert contact.webhook is not None
    return "webhook", contact.webhook


class MairieNotifier:
    """Writes the notices to the mairies' contacts, once each; `tell` never blocks on the
    network nor raises."""

    def __init__(self, settings: MairieSettings, database: Path | str, zone: ZoneInfo,
                 clock: Clock) -> None:
        self.settings = settings
        self.zone = zone
        self.clock = clock
        self._db = open_database(database, migrations, synchronous="FULL")
        self._lock = threading.Lock()  # the web's and the timer's threads, and the workers
        self._mail = (Worker("mairies-email", settings.smtp, settings.queue_size)
                      if settings.smtp else None)  # fmt: skip
        self._hooks: dict[str, Worker] = {}
        self._started = False
        self.counts = {"duplicates": 0, "undeliverable": 0}
        self._prune()
        self._resume()

    # -- running ---------------------------------------------------------------------------

    def _workers(self) -> list[Worker]:
        return ([self._mail] if self._mail else []) + list(self._hooks.values())

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        with self._lock:
            found = {w.name: dict(w.stats) for w in self._workers()}
        return found | {"notices": dict(self.counts)}

    def start(self) -> None:
        with self._lock:
            self._started = True
            workers = self._workers()
        for w in workers:
            w.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sending; what was not delivered stays pending, for the next start."""
        with self._lock:
            workers = self._workers()
        for w in workers:
            w.stop(timeout)
        with self._lock:
            self._db.close()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued message was sent or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            workers = self._workers()
        return all(w.wait_idle(max(0.0, deadline - time.monotonic())) for w in workers)

    # -- telling ---------------------------------------------------------------------------

    def tell(self, notice: Notice) -> int:
        """Queue the notice's message to each of its contacts not told it already; the
        number of messages queued."""
        try:
            return self._tell(notice)
        except Exception:  # a mairie's message must never undo or stop what asked for it
            log.exception("could not queue the notice %s of visit %s", notice.kind,
                          notice.visit)
            return 0

    def tell_changes(self, changed: Changed) -> int:
        """A listener of the tournée (ground.tournee): tell what the change changed."""
        try:
            return sum(self._tell(n) for n in notices_of(changed, self.clock.now()))
        except Exception:
            log.exception("could not tell the mairies of change #%d", changed.change.id)
            return 0

    def delay_grade(self, visit: str) -> int:
        """The highest grade of delay the mairies were told of for this visit."""
        with self._lock:
            row = self._db.execute(
                "SELECT MAX(grade) FROM mairie_notices WHERE visit = ? AND topic = 'delay' "
                f"AND status IN {_KNOWN_SQL}", [visit]).fetchone()
        return int(row[0] or 0)

    def messages(self, visit: str) -> list[SentMessage]:
        """The messages about one visit, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, visit, kind, channel, address, subject, status, queued_at, "
                "settled_at FROM mairie_notices WHERE visit = ? ORDER BY id", [visit]
            ).fetchall()
        return [SentMessage(r[0], r[1], r[2], r[3], r[4], r[5], r[6],
                            datetime.fromisoformat(r[7]),
                            datetime.fromisoformat(r[8]) if r[8] else None) for r in rows]

    def _tell(self, notice: Notice) -> int:
        zone, url = self.zone, self.settings.public_url
        title, text = subject(notice, zone), body(notice, zone, url)
        data = payload(notice, zone, url)
        digest = _digest(notice, self.settings.delay_threshold_min)
        topic = "delay" if notice.kind == "delayed" else "plan"
        grade = (delay_grade(notice.delay_min, self.settings.delay_threshold_min)
                 if topic == "delay" else 0)  # fmt: skip
        queued = 0
        for contact in notice.contacts:
            channel, address = _address(contact)
            if channel == "email" and self._mail is None:
                with self._lock:
                    self.counts["undeliverable"] += 1
                log.warning("no [mairies.smtp] server: %s not written to about %s", address,
                            notice.visit)
                continue
            with self._lock:
                latest = self._db.execute(
                    "SELECT digest, status FROM mairie_notices WHERE address = ? AND visit = ? "
                    "AND topic = ? ORDER BY id DESC LIMIT 1",
                    [address, notice.visit, topic]).fetchone()  # fmt: skip
                if latest is not None and latest[0] == digest and latest[1] in _KNOWN:
                    self.counts["duplicates"] += 1
                    continue
                headers = dict(contact.headers) if channel == "webhook" else {}
                cursor = self._db.execute(
                    "INSERT INTO mairie_notices (visit, topic, kind, channel, address, digest, "
                    "grade, subject, body, payload, headers, queued_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [notice.visit, topic, notice.kind, channel, address, digest, grade, title,
                     text, json.dumps(data, ensure_ascii=False), json.dumps(headers),
                     self.clock.now().isoformat()])  # fmt: skip
            self._queue(_Message(int(cursor.lastrowid or 0), digest, channel, address, title,
                                 text, data, headers))
            queued += 1
        return queued

    # -- delivering ------------------------------------------------------------------------

    def _queue(self, m: _Message) -> None:
        if m.channel == "email":
            worker, send = self._mail, functools.partial(self._send_mail, m)
        else:
            worker, send = self._hook(m.address), functools.partial(self._post, m)
        if worker is None:  # pending mail after the server was taken out of the settings
            log.warning("no [mairies.smtp] server: message %d to %s left pending", m.id,
                        m.address)
            return
        label = f"notice {m.id} to {worker.name if m.channel == 'webhook' else m.address}"
        job = Job(label, send, functools.partial(self._settle, m.id))
        if not worker.put(job):
            self._settle(m.id, "dropped")

    def _hook(self, url: str) -> Worker:
        """The worker of one webhook URL, made when first needed."""
        with self._lock:
            worker = self._hooks.get(url)
            if worker is None:
                parts = urlsplit(url)  # no query or user in the logs: they may hold a token
                name = f"webhook {parts.hostname}{parts.path}"
                if any(w.name == name for w in self._hooks.values()):
                    name += f" [{len(self._hooks)}]"
                worker = self._hooks[url] = Worker(name, self.settings.webhook,
                                                   self.settings.queue_size)
                if self._started:
                    worker.start()
        return worker

    def _send_mail(self, m: _Message) -> None:
        assert self.settings.smtp is not None
        message = EmailMessage()
        message["Subject"] = m.subject
        message["To"] = m.address
        # The same on a message sent again after a restart: a mailbox shows it once. The
        # digest tells apart the rows of a database made anew (set aside as damaged).
        message["Message-ID"] = f"<mairie-notice-{m.id}-{m.digest[:16]}@medicobus>"
        message.set_content(m.body)
        send_mail(self.settings.smtp, message)

    def _post(self, m: _Message) -> None:
        post_json(m.address, m.payload, m.headers, self.settings.webhook.timeout_s)

    def _settle(self, message_id: int, outcome: Outcome | Literal["dropped"]) -> None:
        with self._lock:
            self._db.execute("UPDATE mairie_notices SET status = ?, settled_at = ?, "
                             "headers = NULL WHERE id = ?",
                             [outcome, self.clock.now().isoformat(), message_id])

    def _resume(self) -> None:
        """Queue again what was pending when the ground last stopped."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, digest, channel, address, subject, body, payload, headers "
                "FROM mairie_notices WHERE status = 'pending' ORDER BY id").fetchall()
        for id_, digest, channel, address, title, text, data, headers in rows:
            self._queue(_Message(id_, digest, channel, address, title, text, json.loads(data),
                                 json.loads(headers or "{}")))
        if rows:
            log.info("mairies: %d messages pending since the last stop queued again",
                     len(rows))

    def _prune(self) -> None:
        since = (self.clock.now() - timedelta(days=KEEP_DAYS)).isoformat()
        with self._lock:
            self._db.execute("DELETE FROM mairie_notices WHERE status != 'pending' AND "
                             "queued_at < ?", [since])


# -- delays on the day --------------------------------------------------------------------


class DelayWatch:
    """Tells a visit's mairie when the bus is late: once when the forecast delay first
    passes the threshold, once more past twice it, never once the bus has arrived.

    Only a bus that is online is judged: the forecast of a silent bus is a guess, and a
    bus parked at the stop whose arrival has not reached the ground yet must not be
    announced late. Called by the service's timer, as often as it likes: the fleet's
    forecasts are worked out at most once per `every` (of the board's clock); `check` never
    raises. `claim`: what may be told of an arrival at a moment (ground.precision; by
    default none recorded: rounded to 5 min)."""

    def __init__(self, notifier: MairieNotifier, board: Board,
                 every: timedelta = timedelta(seconds=30),
                 claim: Callable[[datetime, datetime], Claim] = NOT_KNOWN.claim) -> None:
        self.notifier = notifier
        self.board = board
        self.claim = claim
        self.every = every
        self._last: datetime | None = None
        self._day: date | None = None
        self._told: dict[str, int] = {}  # today's visit -> grade told (from the log at first)

    def check(self) -> int:
        """Look at today's forecasts; the number of messages queued."""
        try:
            return self._check()
        except Exception:
            log.exception("the mairies' delay watch failed")
            return 0

    def _check(self) -> int:
        board, threshold = self.board, self.notifier.settings.delay_threshold_min
        fleet, now, today = board.fleet, board.clock.now(), board.today()
        if self._last is not None and abs(now - self._last) < self.every:
            return 0
        self._last = now
        if today != self._day:
            self._day, self._told = today, {}
        queued = 0
        for vehicle in fleet.vehicles:
            if board.state.get(vehicle.id).presence(now, board.stale_after) != "online":
                continue
            for f in board.forecasts(vehicle.id):
                grade = delay_grade(f.delay_min, threshold)
                if f.status not in _NOT_YET or f.arrived_at is not None or grade == 0:
                    continue
                vid = f.visit.visit
                told = self._told.get(vid)
                if told is None:
                    told = self.notifier.delay_grade(vid)
                if grade > told:
                    claim = self.claim(f.arrive.astimezone(fleet.zone), now)
                    queued += self.notifier.tell(self._notice(
                        fleet, vehicle.name, f.visit.stop, vid, f.arrive, f.depart,
                        f.delay_min, today, claim))
                    told = grade
                self._told[vid] = told
        return queued

    @staticmethod
    def _notice(fleet: Fleet, vehicle_name: str, stop_id: str, vid: str, arrive: datetime,
                depart: datetime, delay_min: int, today: date, claim: Claim) -> Notice:
        dated = next((v for v in visits_on(fleet, today, stop=stop_id) if v.id == vid), None)
        stop = dated.stop if dated is not None else fleet.stop(stop_id)  # the day's place
        planned = Slot.of(dated) if dated is not None else Slot(arrive, depart, stop.place)
        return Notice(kind="delayed", visit=vid, commune=stop.commune, insee=stop.insee,
                      vehicle_name=vehicle_name, before=planned,
                      after=Slot(arrive, depart, stop.place), contacts=tuple(stop.contacts),
                      delay_min=delay_min, claim=claim)

