"""From the board's views to what the public API returns and the commune page shows.

All texts of the page are made here, once: the page renders them and its live stream
sends them (`PageTexts`), so static/live.js has no wording of its own.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from babel.dates import format_date

from ground.fleet import Stop
from ground.precision import PrecisionTable
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


def visit_out(v: VisitView, zone: ZoneInfo, now: datetime, precision: PrecisionTable
              ) -> VisitOut:
    """`precision`: what the record allows saying of the ETA at `now` (ground.precision)."""
    eta = _local(v.eta, zone)
    claim = None if eta is None else precision.claim(eta, now)
    told: dict[str, Any] = {} if claim is None else dict(
        eta_said=claim.said, eta_from=claim.earliest, eta_to=claim.latest,
        eta_precision_min=claim.precision_min)
    return VisitOut(
        **told,
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
        eta=eta,
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


def dated_visit_out(v: VisitView, stop: Stop, zone: ZoneInfo, now: datetime,
                    precision: PrecisionTable) -> DatedVisitOut:
    return DatedVisitOut(**visit_out(v, zone, now, precision).model_dump(), stop=stop.id,
                         commune=stop.commune, insee=stop.insee)


def _summary_fields(s: StopView, zone: ZoneInfo, now: datetime,
                    precision: PrecisionTable) -> dict[str, Any]:
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
        next_visit=None if nv is None else visit_out(nv, zone, now, precision),
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


def stop_out(s: StopView, zone: ZoneInfo, now: datetime, precision: PrecisionTable
             ) -> StopOut:
    return StopOut(**_summary_fields(s, zone, now, precision))


def stop_detail_out(s: StopView, zone: ZoneInfo, now: datetime, precision: PrecisionTable
                    ) -> StopDetailOut:
    return StopDetailOut(**_summary_fields(s, zone, now, precision),
                         upcoming=[visit_out(v, zone, now, precision) for v in s.upcoming])


def commune_page(s: StopView, zone: ZoneInfo, now: datetime, precision: PrecisionTable,
                 lang: Lang = "fr") -> CommunePageOut:
    detail = stop_detail_out(s, zone, now, precision)
    return CommunePageOut(**dict(detail), page=page_texts(detail, lang))


# --- the texts of the commune page, in French, or in English on the page's switch ---------

Lang = Literal["fr", "en"]

# The page's fixed words (the template's) and its live sentences (formatted below).
WORDS: dict[Lang, dict[str, str]] = {
    "fr": {
        "title": "Médicobus à {commune}", "all": "← Toutes les communes",
        "parking": "Stationnement : {place}", "next": "Prochain passage",
        "planned_hours": "Horaires prévus :", "none": "Aucun passage prévu pour le moment.",
        "conn": "· connexion interrompue, nouvel essai…", "upcoming": "Passages suivants",
        "date": "Date", "half": "Demi-journée", "hours": "Horaires", "status": "Statut",
        "no_more": "Aucun autre passage prévu dans les deux semaines.",
        "ics": "Ajouter les passages à votre agenda (iCalendar)",
        "switch": "English", "switch_lang": "en",
        "reason": "Motif : {reason}", "departed": "Reparti à {t}", "arrived": "Arrivé à {t}",
        "arrived_late": "Arrivé à {t}, avec {m} min de retard",
        # The ETA as precisely as the record allows (ground.precision), never a time past.
        "eta_minute": "Arrivée estimée : {t}", "eta_around": "Arrivée estimée : vers {t}",
        "eta_range": "Arrivée estimée : entre {t} et {u}",
        "eta_by": "Arrivée estimée : entre maintenant et {u}",
        "eta_soon": "Arrivée estimée : dans quelques minutes",
        "etd": "Départ estimé : {t}", "updated": "mis à jour à {t}",
        "nobody": "Personne en attente", "one": "1 personne en attente",
        "many": "{n} personnes en attente", "wait": "{people}, attente estimée {m} min",
        "paused": " (consultations en pause)",
        "lost_none": "Liaison avec le bus perdue : aucune position reçue",
        "lost": "Liaison avec le bus perdue : dernière position reçue il y a {m} min",
    },
    "en": {
        "title": "Médicobus in {commune}", "all": "← All communes",
        "parking": "Parking place: {place}", "next": "Next visit",
        "planned_hours": "Planned hours:", "none": "No visit planned yet.",
        "conn": "· connection lost, trying again…", "upcoming": "Upcoming visits",
        "date": "Date", "half": "Half-day", "hours": "Hours", "status": "Status",
        "no_more": "No other visit in the next two weeks.",
        "ics": "Add the visits to your calendar (iCalendar)",
        "switch": "Français", "switch_lang": "fr",
        "reason": "Reason: {reason}", "departed": "Left at {t}", "arrived": "Arrived at {t}",
        "arrived_late": "Arrived at {t}, {m} min late",
        "eta_minute": "Expected at {t}", "eta_around": "Expected around {t}",
        "eta_range": "Expected between {t} and {u}", "eta_by": "Expected between now and {u}",
        "eta_soon": "Expected in a few minutes",
        "etd": "Expected to leave at {t}", "updated": "updated at {t}",
        "nobody": "Nobody waiting", "one": "1 person waiting",
        "many": "{n} people waiting", "wait": "{people}, estimated wait {m} min",
        "paused": " (consultations paused)",
        "lost_none": "Link with the bus lost: no position received",
        "lost": "Link with the bus lost: last position received {m} min ago",
    },
}


def day_label(day: date, lang: Lang) -> str:
    return day_label_fr(day) if lang == "fr" else format_date(day, "EEEE d MMMM", locale="en")


def eta_text(v: VisitOut | None, lang: Lang = "fr") -> str:
    w = WORDS[lang]
    if v is None or v.status is VisitStatus.CANCELLED:
        return ""
    if v.status is VisitStatus.DEPARTED:
        return w["departed"].format(t=hm(v.departed_at)) if v.departed_at else ""
    if v.status in (VisitStatus.ARRIVED, VisitStatus.CONSULTING) and v.arrived_at:
        # Still said once the bus is there: the mairie's residents were told it was late.
        late = int((v.arrived_at - v.planned_arrive).total_seconds() // 60)
        if late >= 1:
            return w["arrived_late"].format(t=hm(v.arrived_at), m=late)
        return w["arrived"].format(t=hm(v.arrived_at))
    if v.eta_said is None:
        return ""
    return w[f"eta_{v.eta_said.value}"].format(t=hm(v.eta_from), u=hm(v.eta_to))


def etd_text(v: VisitOut | None, lang: Lang = "fr") -> str:
    if v is None or v.status in FINISHED or v.etd is None:
        return ""
    return WORDS[lang]["etd"].format(t=hm(v.etd))


def planned_text(v: VisitOut) -> str:
    return f"{hm(v.planned_arrive)} – {hm(v.planned_depart)}"


def queue_text(s: StopOut, lang: Lang = "fr") -> str:
    """'3 personnes en attente, attente estimée 45 min'."""
    q = s.queue
    if q is None:
        return ""
    w = WORDS[lang]
    people = {0: w["nobody"], 1: w["one"]}.get(q.waiting, w["many"].format(n=q.waiting))
    text = w["wait"].format(people=people, m=q.wait_min)
    return text + w["paused"] if q.paused else text


def link_text(s: StopOut, lang: Lang = "fr") -> str:
    if not s.link_lost:
        return ""
    if s.last_seen_min is None:
        return WORDS[lang]["lost_none"]
    return WORDS[lang]["lost"].format(m=s.last_seen_min)


def page_texts(s: StopDetailOut, lang: Lang = "fr") -> PageTexts:
    """Every live text of the page, by the id of the element that shows it."""
    v, w = s.next_visit, WORDS[lang]

    def status(u: VisitOut) -> str:
        return u.label_fr if lang == "fr" else u.label_en

    texts = {
        "nv-day": day_label(v.day, lang) if v else "",
        "nv-half": half_label(v.half, lang) if v else "",
        "nv-planned": planned_text(v) if v else "",
        "nv-status": status(v) if v else "",
        "nv-cancel": w["reason"].format(reason=v.cancel_reason) if v and v.cancel_reason else "",
        "nv-eta": eta_text(v, lang),
        "nv-etd": etd_text(v, lang),
        "queue": queue_text(s, lang),
        "link": link_text(s, lang),
        "updated": w["updated"].format(t=hm(s.generated_at)),
    }
    rows = [RowTexts(status=u.status, cells=[
        day_label(u.day, lang), half_label(u.half, lang), planned_text(u),
        status(u) + (f" ({u.cancel_reason})" if u.cancel_reason else "")])
        for u in s.upcoming]  # fmt: skip
    return PageTexts(texts=texts, status=v.status.value if v else "", rows=rows)
