"""From the board's views to what the public API returns and the commune page shows.

All texts of the page are made here, once: the page renders them and its live stream
sends them (`PageTexts`), so static/live.js has no wording of its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ground.fleet import Stop
from ground.views import StopView, VisitStatus, VisitView
from ground.web.format import day_label_fr, half_label, hm
from ground.web.public.models import (
    CommunePageOut,
    DatedVisitOut,
    PageTexts,
    QueueOut,
    RowTexts,
    StopDetailOut,
    StopOut,
    VisitOut,
)

LINK_LOST = ("offline", "stale")
FINISHED = (VisitStatus.DEPARTED, VisitStatus.CANCELLED, VisitStatus.UNCONFIRMED)


def _local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    return None if moment is None else moment.astimezone(zone).replace(microsecond=0)


def visit_out(v: VisitView, zone: ZoneInfo) -> VisitOut:
    return VisitOut(
        visit=v.visit,
        vehicle=v.vehicle,
        vehicle_name=v.vehicle_name,
        day=v.day,
        day_label_fr=day_label_fr(v.day),
        half=v.half,
        half_label_fr=half_label(v.half),
        planned_arrive=v.planned_arrive.astimezone(zone).replace(microsecond=0),
        planned_depart=v.planned_depart.astimezone(zone).replace(microsecond=0),
        status=v.status,
        label_fr=v.label_fr,
        label_en=v.label_en,
        eta=_local(v.eta, zone),
        etd=_local(v.etd, zone),
        delay_min=v.delay_min,
        arrived_at=_local(v.arrived_at, zone),
        departed_at=_local(v.departed_at, zone),
        cancel_reason=v.cancel_reason,
        place=v.place,
        moved_from=_local(v.moved_from, zone),
        added=v.added,
        note=v.note,
    )


def dated_visit_out(v: VisitView, stop: Stop, zone: ZoneInfo) -> DatedVisitOut:
    return DatedVisitOut(**visit_out(v, zone).model_dump(), stop=stop.id, commune=stop.commune,
                         insee=stop.insee)


def _summary_fields(s: StopView, zone: ZoneInfo, now: datetime) -> dict[str, Any]:
    local_now = now.astimezone(zone)
    minutes = None
    if s.last_seen is not None:
        minutes = max(0, int((now - s.last_seen).total_seconds() // 60))
    nv = s.next_visit
    today_unfinished = (
        nv is not None and nv.day == local_now.date() and nv.status not in FINISHED
    )
    return dict(
        stop=s.stop,
        commune=s.commune,
        insee=s.insee,
        place=s.place,
        lat=s.lat,
        lon=s.lon,
        next_visit=None if nv is None else visit_out(nv, zone),
        vehicle_presence=s.vehicle_presence,
        last_seen=_local(s.last_seen, zone),
        last_seen_min=minutes,
        link_lost=today_unfinished and s.vehicle_presence in LINK_LOST,
        updated_at=_local(s.updated_at, zone),
        generated_at=local_now.replace(microsecond=0),
        queue=None if s.queue is None else QueueOut(
            waiting=s.queue.waiting, wait_min=s.queue.wait_min, paused=s.queue.paused,
            updated_at=s.queue.updated_at.astimezone(zone).replace(microsecond=0),
        ),
    )


def stop_out(s: StopView, zone: ZoneInfo, now: datetime) -> StopOut:
    return StopOut(**_summary_fields(s, zone, now))


def stop_detail_out(s: StopView, zone: ZoneInfo, now: datetime) -> StopDetailOut:
    return StopDetailOut(
        **_summary_fields(s, zone, now), upcoming=[visit_out(v, zone) for v in s.upcoming]
    )


def commune_page(s: StopView, zone: ZoneInfo, now: datetime) -> CommunePageOut:
    detail = stop_detail_out(s, zone, now)
    return CommunePageOut(**dict(detail), page=page_texts(detail))


# --- the texts of the commune page ---------------------------------------------------------


def eta_text(v: VisitOut | None) -> str:
    if v is None or v.status is VisitStatus.CANCELLED:
        return ""
    if v.status is VisitStatus.DEPARTED:
        return f"Reparti à {hm(v.departed_at)}" if v.departed_at else ""
    if v.status in (VisitStatus.ARRIVED, VisitStatus.CONSULTING) and v.arrived_at:
        return f"Arrivé à {hm(v.arrived_at)}"
    return f"Arrivée estimée : {hm(v.eta)}" if v.eta else ""


def etd_text(v: VisitOut | None) -> str:
    if v is None or v.status in FINISHED or v.etd is None:
        return ""
    return f"Départ estimé : {hm(v.etd)}"


def planned_text(v: VisitOut) -> str:
    return f"{hm(v.planned_arrive)} – {hm(v.planned_depart)}"


def queue_text(s: StopOut) -> str:
    """'3 personnes en attente, attente estimée 45 min'."""
    q = s.queue
    if q is None:
        return ""
    people = {0: "Personne en attente", 1: "1 personne en attente"}.get(
        q.waiting, f"{q.waiting} personnes en attente")
    text = f"{people}, attente estimée {q.wait_min} min"
    return text + " (consultations en pause)" if q.paused else text


def link_text(s: StopOut) -> str:
    if not s.link_lost:
        return ""
    if s.last_seen_min is None:
        return "Liaison avec le bus perdue : aucune position reçue"
    return f"Liaison avec le bus perdue : dernière position reçue il y a {s.last_seen_min} min"


def page_texts(s: StopDetailOut) -> PageTexts:
    """Every live text of the page, by the id of the element that shows it."""
    v = s.next_visit
    texts = {
        "nv-day": v.day_label_fr if v else "",
        "nv-half": v.half_label_fr if v else "",
        "nv-half-en": half_label(v.half, "en") if v else "",
        "nv-planned": planned_text(v) if v else "",
        "nv-status": v.label_fr if v else "",
        "nv-status-en": v.label_en if v else "",
        "nv-cancel": f"Motif : {v.cancel_reason}" if v and v.cancel_reason else "",
        "nv-eta": eta_text(v),
        "nv-etd": etd_text(v),
        "queue": queue_text(s),
        "link": link_text(s),
        "updated": f"mis à jour à {hm(s.generated_at)}",
    }
    rows = [RowTexts(status=u.status, cells=[
        u.day_label_fr, u.half_label_fr, planned_text(u),
        u.label_fr + (f" ({u.cancel_reason})" if u.cancel_reason else "")])
        for u in s.upcoming]  # fmt: skip
    return PageTexts(texts=texts, status=v.status.value if v else "", rows=rows)
