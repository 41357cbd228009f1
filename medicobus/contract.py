"""The contract between bus and ground: MQTT topics and JSON payloads.

This is the only module both `onboard` and `ground` import from each other's world, so a
change to what crosses the air is a change here, with its version. Every payload carries
`v` (the protocol version), `kind`, a unique `id`, the `vehicle` and a UTC timestamp `ts`
(but the ground's `ack`, which has no `id` nor `ts`).
See docs/protocol.md for the topic map and an example of each payload.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

PROTOCOL_VERSION: Literal[1] = 1
TOPIC_ROOT = "medicobus/v1"
MAX_BATCH_ITEMS = 500

VehicleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
MessageId = Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


def _representable_in_utc(moment: datetime) -> datetime:
    """Every time that crosses the air must have a UTC equivalent: 9999-12-31T23:59:59-14:00
    is valid ISO 8601 but falls in year 10000, and the ground works in UTC."""
    if moment.year in (1, 9999):  # only there can an offset carry it past the calendar
        try:
            moment.astimezone(UTC)
        except OverflowError:
            raise ValueError("time cannot be represented in UTC (year out of range)") from None
    return moment


Timestamp = Annotated[AwareDatetime, AfterValidator(_representable_in_utc)]


def _in_utc(moment: datetime) -> datetime:
    """A message's own time, held in UTC (as the bus sends it): then every comparison and
    difference the ground makes with it is between moments of one zone, the cheap case."""
    return _representable_in_utc(moment).astimezone(UTC)


MessageTime = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class Channel(StrEnum):
    """The last level of a vehicle's topic: what kind of traffic flows there."""

    STATUS = "status"  # bus -> ground, retained, and the bus's Last Will
    POSITION = "position"  # bus -> ground, live fixes
    EVENT = "event"  # bus -> ground, arrival / departure at a stop
    BATCH = "batch"  # bus -> ground, backlog drained after an outage
    TICKET = "ticket"  # bus -> ground, anonymous: a patient's ticket changed state
    QUEUE = "queue"  # bus -> ground, anonymous: the waiting room at the current visit
    READING = "reading"  # bus -> ground: equipment sensors (engine, house battery, fridge)
    SUMMARY = "summary"  # bus -> ground, anonymous: a visit's counts once its session ends
    PLAN = "plan"  # ground -> bus, retained: the day's visits
    APPOINTMENTS = "appointments"  # ground -> bus, retained: the day's bookings, hashed
    ACK = "ack"  # ground -> bus, not retained: what the ground has committed (since 2026-12-03)


UPLINK_CHANNELS = (Channel.STATUS, Channel.POSITION, Channel.EVENT, Channel.BATCH,
                   Channel.TICKET, Channel.QUEUE, Channel.READING, Channel.SUMMARY)
DOWNLINK_CHANNELS = (Channel.PLAN, Channel.APPOINTMENTS, Channel.ACK)


class ContractError(ValueError):
    """A topic or payload that does not follow this contract."""


def topic(vehicle: str, channel: Channel) -> str:
    return f"{TOPIC_ROOT}/vehicles/{vehicle}/{channel.value}"


def uplink_subscription() -> str:
    """What the ground subscribes to: every vehicle's every channel (plans are filtered out)."""
    return f"{TOPIC_ROOT}/vehicles/+/+"


@functools.lru_cache(maxsize=4096)  # a fleet has few topics; ingest parses each message's
def parse_topic(name: str) -> tuple[str, Channel]:
    parts = name.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != f"{TOPIC_ROOT}/vehicles":
        raise ContractError(f"topic {name!r} is not {TOPIC_ROOT}/vehicles/<vehicle>/<channel>")
    try:
        return parts[3], Channel(parts[4])
    except ValueError:
        raise ContractError(f"unknown channel {parts[4]!r} in topic {name!r}") from None


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = PROTOCOL_VERSION  # the default is for building; on the air it is required
    id: MessageId = Field(default_factory=new_id)
    vehicle: VehicleId
    ts: MessageTime

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class Position(_Message):
    """A filtered GPS fix. Speed in m/s, heading in degrees from true north, acc in metres."""

    kind: Literal["position"] = "position"
    lat: Latitude
    lon: Longitude
    speed: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    heading: Annotated[float, Field(ge=0, le=360, allow_inf_nan=False)] | None = None
    acc: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] | None = None


class VisitEvent(_Message):
    """The bus arrived at, or left, the stop of one of the day's planned visits."""

    kind: Literal["event"] = "event"
    event: Literal["arrival", "departure"]
    visit: Annotated[str, Field(min_length=1, max_length=120)]
    stop: Annotated[str, Field(min_length=1, max_length=64)]
    lat: Latitude
    lon: Longitude


class Status(_Message):
    """Retained per vehicle; the offline form is also the bus's Last Will."""

    kind: Literal["status"] = "status"
    state: Literal["online", "offline"]
    reason: Annotated[str, Field(max_length=120)] | None = None


class TicketEvent(_Message):
    """A ticket at the kiosk changed state. Anonymous by design: a number, the booking's id
    (or none for a walk-in), the outcome and when; never a name, a birth date or a reason."""

    kind: Literal["ticket"] = "ticket"
    visit: Annotated[str, Field(min_length=1, max_length=120)]
    ticket: Annotated[int, Field(ge=1, le=9999)]
    appointment: Annotated[str, Field(max_length=64)] | None = None  # None: a walk-in
    event: Literal["checked_in", "called", "seen", "absent"]


# --- the queue on the patient's phone (added within version 1 on 2026-12-03, issue 13) ---
# A ticket's QR code holds a random token; what crosses the air is `ticket_ref(token)`, so
# neither the broker nor the ground's store holds the address of anyone's page.
MAX_FOLLOWED = 300


def ticket_ref(token: str) -> str:
    """The reference under which a ticket's token travels: 96 bits of its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()[:24]


class FollowedTicket(BaseModel):
    """One ticket as its holder's phone follows it: its number, its token's reference, the
    people called before it and its forecast wait; `called` once staff called it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ticket: Annotated[int, Field(ge=1, le=9999)]
    ref: Annotated[str, Field(pattern=r"^[0-9a-f]{24}$")]
    ahead: Annotated[int, Field(ge=0, le=1000)]
    wait_min: Annotated[int, Field(ge=0, le=10_000)]
    called: bool = False


class QueueState(_Message):
    """The waiting room at a visit, as the kiosk sees it; sent on every change."""

    kind: Literal["queue"] = "queue"
    visit: Annotated[str, Field(min_length=1, max_length=120)]
    open: bool  # False once staff ended the session at this stop
    paused: bool = False
    waiting: Annotated[int, Field(ge=0, le=1000)]
    in_consultation: Annotated[int, Field(ge=0, le=20)] = 0
    booked_remaining: Annotated[int, Field(ge=0, le=1000)] = 0  # booked, not checked in yet
    last_booked: Timestamp | None = None  # the last booked appointment's time
    consult_min: Annotated[float, Field(gt=0, le=240, allow_inf_nan=False)]  # observed mean
    wait_min: Annotated[int, Field(ge=0, le=10_000)]  # for someone checking in now
    # Since 2026-12 (older buses leave it out): when the last patient waiting or still
    # booked will have been seen, as the kiosk forecasts it from the figures above.
    ends_at: Timestamp | None = None
    # Since 2026-12-03 (older buses leave it out): the tickets waiting or called while the
    # session is open, in call order, for the patients' phones.
    tickets: Annotated[list[FollowedTicket], Field(max_length=MAX_FOLLOWED)] | None = None


Quantity = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Flag = Literal["nan", "infinite", "out_of_range", "crc", "power_on_reset", "stale", "unknown"]
_FLAGS = frozenset(get_args(Flag))
_FLAG_NAME = r"^[a-z][a-z0-9_]{0,31}$"


def _known_flag(value: Any) -> Any:
    """Flags are open to newer buses: a well-formed flag this version does not know is kept
    as "unknown" (its value is null either way) rather than refusing the whole reading."""
    if isinstance(value, str) and value not in _FLAGS and re.match(_FLAG_NAME, value):
        return "unknown"
    return value


class Reading(_Message):
    """Readings of one equipment sensor on the bus: the quantities that moved beyond their
    deadband, or all of them at the sensor's heartbeat. Names carry their unit
    (`coolant_c`, `soc_pct`, `voltage_v`). A value the sensor gave that cannot be true is
    sent as null with a flag saying why, so the ground never stores it as truth."""

    kind: Literal["reading"] = "reading"
    sensor: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]  # "engine", "fridge"…
    values: Annotated[dict[Quantity, Annotated[float, Field(allow_inf_nan=False)] | None],
                      Field(max_length=40)]
    flags: Annotated[dict[Quantity, Annotated[Flag, BeforeValidator(_known_flag)]],
                     Field(max_length=40)] = {}
    # Codes the sensor reports as set now: OBD-II trouble codes ("P0301"), battery alarms.
    codes: Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,32}$")]],
                     Field(max_length=50)] | None = None


class VisitSummary(_Message):
    """A visit's activity, sent once when its session at the kiosk ends (since 2026-12-03):
    counts and durations only, for the funders' figures. `waits_s` are the waits (check-in
    to call) of the patients called, sorted: they say nothing of which ticket waited."""

    kind: Literal["summary"] = "summary"
    visit: Annotated[str, Field(min_length=1, max_length=120)]
    opened: Timestamp  # the session's start and end at the kiosk
    closed: Timestamp
    booked: Annotated[int, Field(ge=0, le=1000)]  # bookings the kiosk knew for the visit
    checked_in_name: Annotated[int, Field(ge=0, le=1000)]  # booked, found by name and birth
    checked_in_code: Annotated[int, Field(ge=0, le=1000)]  # booked, found by booking code
    walk_in: Annotated[int, Field(ge=0, le=1000)]
    seen: Annotated[int, Field(ge=0, le=1000)]
    absent: Annotated[int, Field(ge=0, le=1000)]  # checked in, did not answer the call
    no_show: Annotated[int, Field(ge=0, le=1000)]  # booked, never checked in
    waits_s: Annotated[list[Annotated[int, Field(ge=0, le=86_400)]], Field(max_length=1000)]


Item = Annotated[Position | VisitEvent | TicketEvent | QueueState | Reading | VisitSummary,
                 Field(discriminator="kind")]


class Batch(_Message):
    """Several outbox rows in one MQTT message, used when draining a backlog."""

    kind: Literal["batch"] = "batch"
    items: Annotated[list[Item], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


Uplink = Annotated[Position | VisitEvent | TicketEvent | QueueState | Reading | VisitSummary
                   | Status | Batch,
                   Field(discriminator="kind")]
_uplink = TypeAdapter(Uplink)
_item = TypeAdapter(Item)


class _BatchEnvelope(_Message):
    """A batch whose items are not judged yet: each is judged on its own."""

    kind: Literal["batch"] = "batch"
    items: Annotated[list[Any], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


@dataclass(frozen=True)
class RefusedItem:
    """One item of a batch that is refused: as it came (JSON), and why."""

    payload: bytes
    error: str


class PlannedVisit(BaseModel):
    """One stop of the day as the bus needs it to detect arrival and departure offline."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    visit: str
    stop: str
    commune: str
    insee: str
    lat: Latitude
    lon: Longitude
    radius_m: Annotated[float, Field(gt=0, le=5000)]
    arrive: Timestamp
    depart: Timestamp


class Plan(_Message):
    """Ground -> bus, retained: the vehicle's visits for one service day, in order."""

    kind: Literal["plan"] = "plan"
    day: date
    visits: list[PlannedVisit]


class BookedAppointment(BaseModel):
    """One booking as the bus may know it: its id, visit and time, and keyed hashes of the
    patient's normalised identity (see `identity_digest`); never the identity itself."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    appointment: Annotated[str, Field(min_length=1, max_length=64)]
    visit: str
    time: Timestamp
    identity: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Appointments(_Message):
    """Ground -> bus, retained: the day's bookings for the vehicle, hashed."""

    kind: Literal["appointments"] = "appointments"
    day: date
    items: list[BookedAppointment]


# Letters Unicode does not decompose into a base letter and an accent.
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ı": "i"})


def normalise_name(text: str) -> str:
    """Upper case, no accents, letters only: forgives what is safe to forgive at a kiosk
    (case, accents, hyphens, apostrophes, spaces), so "Lefèvre-Dupont" == "LEFEVRE DUPONT"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_LIGATURES))
    return "".join(c for c in decomposed if c.isalpha() and not unicodedata.combining(c)).upper()


def identity_digest(key: bytes, day: date, last_name: str, birth: date) -> str:
    """The keyed hash (HMAC-SHA256) under which a booking travels and the kiosk matches.

    Both sides normalise the name with `normalise_name`, so "N'Diaye", "ndiaye" and
    "N DIAYE" give the same digest; the day is mixed in so a digest is worth nothing the
    next day.
    """
    message = f"{day.isoformat()}|{normalise_name(last_name)}|{birth.isoformat()}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


# The fields that hold JSON objects, per message: the rest hold numbers, strings and lists
# of them, which have no keys of their own.
_HOLDING: dict[type[BaseModel], tuple[str, ...]] = {
    Reading: ("values", "flags"), Batch: ("items",), Plan: ("visits",),
    Appointments: ("items",), QueueState: ("tickets",),
}


def parse_uplink(
    payload: bytes | str,
) -> Position | VisitEvent | TicketEvent | QueueState | Reading | VisitSummary | Status | Batch:
    """Validate an uplink payload; raise ContractError saying what is wrong."""
    return _strict(_uplink, payload)


@dataclass(frozen=True)
class Uplinked:
    """An uplink payload judged item by item: its kind, what it carries that is valid, and
    each item of a batch that is not."""

    kind: str
    id: str  # the message's own (a batch's, not its items')
    items: list[Position | VisitEvent | TicketEvent | QueueState | Reading | VisitSummary
                | Status]
    refused: list[RefusedItem]


def parse_uplink_items(payload: bytes | str) -> Uplinked:
    """Validate an uplink payload item by item, so that one bad item of a batch does not
    refuse the others. A payload that is not a message at all raises ContractError."""
    try:
        message = _strict(_uplink, payload)
    except ContractError as exc:
        judged = _judge_each(payload)
        if judged is None:
            raise exc from None
        return judged
    if isinstance(message, Batch):
        return Uplinked("batch", message.id, list(message.items), [])
    return Uplinked(message.kind, message.id, [message], [])


def _judge_each(payload: bytes | str) -> Uplinked | None:
    """A batch refused whole, read again item by item; None if it is not a batch at all."""
    try:
        envelope = _BatchEnvelope.model_validate_json(payload, strict=True)
        document = json.loads(payload, object_pairs_hook=_Object)
    except (ValidationError, ValueError):
        return None
    if "v" not in document or document.repeated:
        return None
    valid: list[Position | VisitEvent | TicketEvent | QueueState | Reading | VisitSummary
                | Status] = []
    refused: list[RefusedItem] = []
    for index, raw in enumerate(document["items"]):
        text = json.dumps(raw).encode()
        try:
            if repeated := _repeated(raw):
                raise ContractError(f"repeated key {', '.join(map(repr, sorted(repeated)))}")
            valid.append(_strict(_item, text))
        except ContractError as exc:
            refused.append(RefusedItem(text, f"items.{index}: {exc}"))
    return Uplinked("batch", envelope.id, valid, refused)


def _strict(adapter: TypeAdapter[Any] | type[BaseModel], payload: bytes | str) -> Any:
    """Parse JSON strictly, as the wire is defined: numbers are numbers (not booleans nor
    strings), times are ISO 8601 strings with an offset (not integers), `v` is present (its
    value is one this code knows: the models say which), and no object repeats a key (JSON
    parsers disagree on which one wins, so a repeat could mean one thing to a check and
    another to the store)."""
    try:
        if isinstance(adapter, TypeAdapter):
            message = adapter.validate_json(payload, strict=True)
        else:
            message = adapter.model_validate_json(payload, strict=True)
    except ValidationError as exc:
        raise ContractError(_describe(exc)) from None
    _versioned(message)
    if not _surely_no_repeats(payload, message) and (repeated := _repeated(
            json.loads(payload, object_pairs_hook=_Object))):
        raise ContractError(f"payload: repeated key {', '.join(map(repr, sorted(repeated)))}")
    return message


def _versioned(message: Any) -> None:
    if isinstance(message, BaseModel) and "v" not in message.__pydantic_fields_set__ \
            and "v" in type(message).model_fields:
        raise ContractError("v: the protocol version is missing")
    for index, item in enumerate(message.items if isinstance(message, Batch) else ()):
        if "v" not in item.model_fields_set:
            raise ContractError(f"items.{index}.v: the protocol version is missing")


def _surely_no_repeats(payload: bytes | str, parsed: Any) -> bool:
    """The usual case, cheaply: with JSON's whitespace taken out, every key ends in `":`, so
    as many of those as the keys the parsed message took proves that no key was repeated
    (a difference is a repeat, a field this version ignores, or a quote followed by a colon
    inside a string: then the document is read again, pair by pair)."""
    raw = payload.encode() if isinstance(payload, str) else payload
    return raw.translate(None, b" \t\n\r").count(b'":') == _keys(parsed)


def _keys(value: Any) -> int:
    """How many JSON keys the parsed `value` was made of: one per field it was given, and
    those of the objects its fields hold (`_HOLDING`)."""
    if isinstance(value, BaseModel):
        given = value.__pydantic_fields_set__  # what model_fields_set reads, without the call
        holding = _HOLDING.get(type(value))
        if not holding:  # the hot path: a position, an event, a status
            return len(given)
        fields = value.__dict__
        return len(given) + sum(_keys(fields[name]) for name in holding if name in given)
    if isinstance(value, dict):
        return len(value)  # a reading's values and flags: numbers and names only
    if isinstance(value, list):
        return sum(_keys(v) for v in value if isinstance(v, BaseModel))
    return 0


class _Object(dict[str, Any]):
    """A JSON object read pair by pair, remembering the keys it had more than once."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.repeated = ({k for k, n in Counter(k for k, _ in pairs).items() if n > 1}
                         if len(self) != len(pairs) else set())


def _repeated(document: Any) -> set[str]:
    """Every key repeated in one object of the document, at any depth."""
    found: set[str] = set()
    children = (document.values() if isinstance(document, dict)
                else document if isinstance(document, list) else ())
    if isinstance(document, _Object):
        found |= document.repeated
    for child in children:
        found |= _repeated(child)
    return found


def parse_plan(payload: bytes | str) -> Plan:
    return _strict(Plan, payload)


def parse_appointments(payload: bytes | str) -> Appointments:
    return _strict(Appointments, payload)


def _describe(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


class Ack(BaseModel):
    """Ground -> bus, not retained: uplink messages the ground has committed (stored, skipped
    as already stored, or kept as dead letters), by id; a batch by the batch's own id. The
    bus deletes their outbox rows. The one payload without `id` and `ts`: it is the most
    frequent downlink message, never stored, and acking twice is harmless (since 2026-12-03)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = PROTOCOL_VERSION
    kind: Literal["ack"] = "ack"
    vehicle: VehicleId
    ids: Annotated[list[MessageId], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


def parse_ack(payload: bytes | str) -> Ack:
    return _strict(Ack, payload)
