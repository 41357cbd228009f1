"""The iCalendar feed of a commune's upcoming visits (RFC 5545): one event per visit, its
UID the visit id, cancelled visits kept with STATUS:CANCELLED so calendars remove them."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ground.views import StopView, VisitStatus
from ground.web.format import half_label, hm


def ics_escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def ics_fold(line: str) -> str:
    """Fold at 75 octets (UTF-8) without splitting a character; continuation starts with a space."""
    out: list[str] = []
    current, size, limit = "", 0, 75
    for ch in line:
        n = len(ch.encode("utf-8"))
        if size + n > limit:
            out.append(current)
            current, size, limit = " ", 1, 75
        current += ch
        size += n
    out.append(current)
    return "\r\n".join(out)


def _ics_time(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y%m%dT%H%M%S")


def calendar_ics(s: StopView, zone: ZoneInfo, now: datetime) -> str:
    tzid = str(zone.key)
    stamp = now.astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%M%SZ")
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//medicobus//ground//FR",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{ics_escape(f'Médicobus à {s.commune}')}",
        f"X-WR-TIMEZONE:{tzid}",
    ]
    visits = ([s.next_visit] if s.next_visit else []) + list(s.upcoming)
    if visits:
        lines += _vtimezone(zone, min(v.planned_arrive for v in visits),
                            max(v.planned_depart for v in visits))  # fmt: skip
    seen: set[str] = set()
    for v in visits:
        if v.visit in seen:
            continue
        seen.add(v.visit)
        where = ", ".join(p for p in (s.place, s.commune) if p)
        desc = f"Médicobus ({v.vehicle_name}) : {half_label(v.half)}, " \
               f"{hm(v.planned_arrive, zone)} – {hm(v.planned_depart, zone)}. " \
               f"Statut : {v.label_fr}."  # fmt: skip
        if v.cancel_reason:
            desc += f" Motif : {v.cancel_reason}"
        lines += [
            "BEGIN:VEVENT",
            f"UID:{ics_escape(v.visit)}",
            f"DTSTAMP:{stamp}",
            f"DTSTART;TZID={tzid}:{_ics_time(v.planned_arrive, zone)}",
            f"DTEND;TZID={tzid}:{_ics_time(v.planned_depart, zone)}",
            f"SUMMARY:{ics_escape(f'Médicobus à {s.commune}')}",
            f"LOCATION:{ics_escape(where)}",
            f"GEO:{s.lat:.6f};{s.lon:.6f}",
            f"DESCRIPTION:{ics_escape(desc)}",
            "STATUS:CANCELLED" if v.status is VisitStatus.CANCELLED else "STATUS:CONFIRMED",
            "TRANSP:OPAQUE",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "".join(ics_fold(line) + "\r\n" for line in lines)


def _vtimezone(zone: ZoneInfo, start: datetime, end: datetime) -> list[str]:
    """A VTIMEZONE with the zone's UTC offset changes from the year of `start` to the end of
    the year of `end` (found day by day, then hour by hour within the day of a change)."""
    first = datetime(start.astimezone(zone).year, 1, 1, tzinfo=zone)
    utc = ZoneInfo("UTC")
    t = first.astimezone(utc)
    stop_at = datetime(end.astimezone(zone).year + 1, 1, 1, tzinfo=zone).astimezone(utc)
    offset = t.astimezone(zone).utcoffset() or timedelta(0)
    changes: list[tuple[datetime, timedelta, timedelta, str]] = []
    while t < stop_at:
        day_end = t + timedelta(days=1)
        if (day_end.astimezone(zone).utcoffset() or timedelta(0)) != offset:
            nxt = t
            while nxt < day_end:
                nxt += timedelta(hours=1)
                off = nxt.astimezone(zone).utcoffset() or timedelta(0)
                if off != offset:
                    local = nxt.replace(tzinfo=None) + offset  # in the old offset (RFC 5545)
                    changes.append((local, offset, off, nxt.astimezone(zone).tzname() or ""))
                    offset = off
                    break
        t = day_end
    lines = ["BEGIN:VTIMEZONE", f"TZID:{zone.key}"]
    off0 = first.utcoffset() or timedelta(0)  # the offset in force on 1 January
    kind0 = "DAYLIGHT" if first.dst() else "STANDARD"
    lines += [f"BEGIN:{kind0}", f"DTSTART:{first:%Y%m%dT%H%M%S}",
              f"TZOFFSETFROM:{_offset(off0)}", f"TZOFFSETTO:{_offset(off0)}",
              f"TZNAME:{first.tzname() or ''}", f"END:{kind0}"]  # fmt: skip
    for local, before, after, name in changes:
        kind = "DAYLIGHT" if after > before else "STANDARD"
        lines += [f"BEGIN:{kind}", f"DTSTART:{local:%Y%m%dT%H%M%S}",
                  f"TZOFFSETFROM:{_offset(before)}", f"TZOFFSETTO:{_offset(after)}",
                  f"TZNAME:{name}", f"END:{kind}"]  # fmt: skip
    lines.append("END:VTIMEZONE")
    return lines


def _offset(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
