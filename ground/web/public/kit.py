"""The mairie's kit, per commune: an A4 poster for the notice board (PDF: the month's
visits, how to book, the QR code of the live page; WeasyPrint and segno), a block to embed
in the commune's website (framed only by the sites `[kit] embed_ancestors` names, through
CSP frame-ancestors), an Atom feed of its visits and their changes, and the text ready to
copy into the mairie's app or newsletter (PanneauPocket, IntraMuros: no public API).
Everything in French, made from the board's views like the commune page.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated
from xml.etree import ElementTree as ET

import segno
from jinja2 import Environment, FileSystemLoader
from pydantic import BaseModel, ConfigDict, Field

from ground.views import StopView, VisitStatus, VisitView
from ground.web.format import day_label_fr, half_label, hm

TEMPLATES = Path(__file__).parent.parent / "templates"
STATIC = TEMPLATES.parent / "static"
ORIGIN = r"^(https?://[A-Za-z0-9.-]+(:\d+)?|'self')$"
FEED_BACK_DAYS = 7  # the feed keeps last week's visits (and what happened to them)
FEED_AHEAD_DAYS = 31
ATOM = "http://www.w3.org/2005/Atom"


class KitSettings(BaseModel):
    """`[kit]` of the ground's config."""

    model_config = ConfigDict(extra="forbid")

    # How to book, as the poster and the relay text say it (the operator's words).
    booking: Annotated[str, Field(max_length=400)] = (
        "Consultations avec ou sans rendez-vous. Pour prendre rendez-vous, "
        "adressez-vous à l'équipe du médicobus ou à votre mairie.")
    # The sites that may frame /communes/{insee}/embed (the mairies' websites' origins).
    embed_ancestors: list[Annotated[str, Field(pattern=ORIGIN)]] = []


def month_bounds(today: date) -> tuple[date, date]:
    return today.replace(day=1), today.replace(day=calendar.monthrange(today.year,
                                                                       today.month)[1])


def visit_line(v: VisitView) -> str:
    """'lundi 23 novembre, matin, 08:30 – 10:30' and what changed it."""
    line = f"{day_label_fr(v.day)}, {half_label(v.half)}, {hm(v.planned_arrive)} – " \
           f"{hm(v.planned_depart)}"  # fmt: skip
    if v.status is VisitStatus.CANCELLED:
        return line + " : annulé" + (f" ({v.cancel_reason})" if v.cancel_reason else "")
    if v.moved_from is not None:
        return line + f" : déplacé (prévu le {day_label_fr(v.moved_from.date())})"
    if v.added:
        return line + " : passage ajouté"
    return line


def qr_svg(url: str) -> str:
    """The QR code of `url` as an SVG data URI (segno), for the poster and the page."""
    return segno.make(url, error="m").svg_data_uri(scale=10, border=2)


def poster_pdf(stop: StopView, visits: Sequence[VisitView], month: date, booking: str,
               live_url: str) -> bytes:
    """The A4 poster: the commune, the month's visits, how to book, the QR code."""
    from weasyprint import HTML  # imported when first asked: it loads Pango and fonts

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    html = env.get_template("affiche.html").render(
        s=stop, lines=[(v.status.value, visit_line(v)) for v in visits],
        month=f"{_month_fr(month)}", booking=booking, url=live_url, qr=qr_svg(live_url))
    return HTML(string=html, base_url=f"{STATIC}/").write_pdf()  # affiche.css


def _month_fr(day: date) -> str:
    from babel.dates import format_date

    return format_date(day, "MMMM y", locale="fr")


def relay_text(stop: StopView, live_url: str) -> str:
    """Ready to paste into PanneauPocket, IntraMuros or the newsletter: the next visits
    (two weeks), those cancelled among them, the live page."""
    visits = [v for v in (stop.next_visit, *stop.upcoming) if v is not None]
    upcoming = [v for v in visits if v.status is not VisitStatus.CANCELLED][:4]
    lines = [f"Le médicobus vient à {stop.commune}"
             + (f" ({stop.place})" if stop.place else "") + " :"]
    lines += [f"- {visit_line(v)}" for v in upcoming] or ["- aucun passage prévu pour le moment"]
    cancelled = [v for v in visits if v.status is VisitStatus.CANCELLED][:2]
    lines += [f"Attention : {visit_line(v)}." for v in cancelled]
    lines.append(f"Heure d'arrivée en direct : {live_url}")
    return "\n".join(lines)


def atom_feed(stop: StopView, visits: Sequence[VisitView], page_url: str, feed_url: str,
              now: datetime) -> bytes:
    """RFC 4287 (the standard library's ElementTree writes it: no feed library is needed
    for one flat list). An entry per visit, its id the visit's; `updated` is when the
    visit's announcement took its current form as far as the ground knows: a visit as the
    timetable planned it is dated 14 days before (the horizon of the pages); one changed
    (cancelled, moved, added) or under way, when the feed was made, since the board keeps
    no time of change."""
    now = now.replace(microsecond=0)
    feed = ET.Element("feed", {"xmlns": ATOM, "xml:lang": "fr"})
    _sub(feed, "id", f"tag:medicobus,2026:commune/{stop.insee}")
    _sub(feed, "title", f"Médicobus à {stop.commune}")
    _sub(feed, "updated", now.isoformat())
    _sub(_sub(feed, "author"), "name", "Médicobus")
    ET.SubElement(feed, "link", rel="self", type="application/atom+xml", href=feed_url)
    ET.SubElement(feed, "link", rel="alternate", type="text/html", href=page_url)
    for v in visits:
        changed = v.status is not VisitStatus.PLANNED or v.moved_from is not None or v.added
        planned = min(v.planned_arrive.replace(microsecond=0) - timedelta(days=14), now)
        entry = ET.SubElement(feed, "entry")
        _sub(entry, "id", f"tag:medicobus,2026:visit/{v.visit}")
        _sub(entry, "title", f"Médicobus à {stop.commune} : {visit_line(v)}")
        _sub(entry, "updated", (now if changed else planned).isoformat())
        ET.SubElement(entry, "link", rel="alternate", type="text/html", href=page_url)
        summary = f"{v.label_fr}. {visit_line(v)}." + (f" {v.note}" if v.note else "")
        _sub(entry, "summary", summary, type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    element.text = text
    return element


def embed_policy(csp: str, ancestors: Sequence[str]) -> str:
    """The site's policy, with framing allowed to `ancestors` alone (none: to nobody)."""
    allowed = " ".join(ancestors) if ancestors else "'none'"
    return csp.replace("frame-ancestors 'none'", f"frame-ancestors {allowed}")
