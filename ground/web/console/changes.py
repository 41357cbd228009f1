"""One way in for every change to the tournée, whether it comes from a console form or
the JSON API: the body checked by its model, handed to `ground.tournee`, and what it
changed put in the API's words."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError

from ground.fleet import DatedVisit
from ground.tournee import Change, Changed, Difference, Tournee, refusal
from ground.web.console.models import (
    AddIn,
    CancelIn,
    ChangedOut,
    ChangeIn,
    ChangeOut,
    DifferenceOut,
    EntryIn,
    MoveIn,
    PlaceIn,
    SlotOut,
    UndoIn,
)

CHANGE = TypeAdapter(ChangeIn)

def read_change(data: object) -> ChangeIn:
    """The change in `data` (a form's fields or a JSON body), or Refused naming the field."""
    if isinstance(data, dict):  # a form's empty fields mean "not given"
        data = {k: v for k, v in data.items() if v != "" and k != "csrf"}
        if isinstance(data.get("entry"), dict):
            data["entry"] = {k: v for k, v in data["entry"].items() if v != ""}
    try:
        return CHANGE.validate_python(data)
    except ValidationError as exc:  # the union's tags are no field of the form
        raise refusal(exc, skip=("cancel", "move", "add", "place", "entry", "undo")) from None


def apply(tournee: Tournee, change: ChangeIn, who: str) -> Changed | None:
    if isinstance(change, CancelIn):
        return tournee.cancel(change.visit, change.reason, who)
    if isinstance(change, MoveIn):
        return tournee.move(change.visit, change.reason, who, day=change.day,
                            arrive=change.arrive, depart=change.depart, place=change.place,
                            lat=change.lat, lon=change.lon)  # fmt: skip
    if isinstance(change, AddIn):
        return tournee.add(change.vehicle, change.stop, change.day, change.half, change.arrive,
                           change.depart, change.reason, who)  # fmt: skip
    if isinstance(change, PlaceIn):
        return tournee.park(change.stop, change.day, change.place, change.lat, change.lon,
                            change.reason, who)  # fmt: skip
    if isinstance(change, EntryIn):
        entry = change.entry.model_dump() if change.entry else None
        return tournee.edit_entry(change.key, entry, change.since, change.reason, who)
    assert isinstance(change, UndoIn)
    return tournee.undo(change.change, change.reason, who)


def change_out(c: Change, zone: ZoneInfo) -> ChangeOut:
    return ChangeOut(id=c.id, kind=c.kind, kind_fr=c.kind_fr, who=c.who,
                     at=c.at.astimezone(zone), reason=c.reason, undone_by=c.undone_by,
                     body=c.body)  # fmt: skip


def _slot(v: DatedVisit | None, zone: ZoneInfo) -> SlotOut | None:
    if v is None:
        return None
    return SlotOut(day=v.day, arrive=v.arrive.astimezone(zone), depart=v.depart.astimezone(zone),
                   place=v.stop.place, cancelled=v.cancelled is not None,
                   reason=v.cancelled.reason if v.cancelled else v.note)  # fmt: skip


def difference_out(d: Difference, zone: ZoneInfo) -> DifferenceOut:
    v = d.shown
    return DifferenceOut(visit=d.visit, kind=d.kind, vehicle=v.vehicle, stop=v.stop.id,
                         commune=v.stop.commune, insee=v.stop.insee,
                         before=_slot(d.before, zone), after=_slot(d.after, zone))  # fmt: skip


def changed_out(changed: Changed | None, zone: ZoneInfo) -> ChangedOut:
    if changed is None:
        return ChangedOut(change=None, differences=[])
    return ChangedOut(change=change_out(changed.change, zone),
                      differences=[difference_out(d, zone) for d in changed.differences])
