"""The dashboard's view of each vehicle: what the pages, the JSON API and the live stream
show, built from the board, the live state, the store and the alerts.

Texts are made once, here, in French with English beside them: the pages render them and
the live stream sends them (`display`), so the script only copies text into place.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from babel.dates import format_timedelta

from ground.alerts import threshold_rule
from ground.board import Board
from ground.eta import Forecast
from ground.state import VehicleState
from ground.views import VisitStatus, status_label_en, status_label_fr
from ground.web.fleet.charts import Chart, svg_chart, window
from ground.web.fleet.dtc import meaning
from ground.web.fleet.models import (
    AlertOut,
    CodeOut,
    DataQualityOut,
    Display,
    Measure,
    PositionOut,
    ProbeOut,
    StopNow,
    VehicleDetailOut,
    VehicleOut,
)
from ground.web.fleet.sources import AlertLike, AlertSource, SeriesSource
from ground.web.format import age, hm, hms, number
from medicobus.clock import Clock
from medicobus.geo import distance_m

OLD_READING = timedelta(minutes=30)  # an older last value is shown greyed, with its age
HISTORY = timedelta(days=7)  # alert history shown on a vehicle's page
# What a vehicle's page lists at most: a bus flooding codes or flapping alerts must not
# make a page of megabytes (the rest is counted on the page).
HISTORY_ROWS = 100
CODES_SHOWN = 50
SEVERITY_RANK = {"info": 1, "warning": 2, "major": 3, "critical": 4}
SEVERITY_FR = {"info": "info", "warning": "avertissement", "major": "majeure",
               "critical": "critique"}  # fmt: skip
FLAG_FR = {"nan": "valeur invalide", "infinite": "valeur infinie",
           "out_of_range": "hors limites physiques", "crc": "erreur de transmission (CRC)",
           "power_on_reset": "valeur de mise sous tension (85 °C)",
           "stale": "valeur figée"}  # fmt: skip
PRESENCE_FR = {"online": "en ligne", "offline": "hors ligne", "stale": "silencieux",
               "unknown": "jamais vu"}  # fmt: skip
PRESENCE_EN = {"online": "online", "offline": "offline", "stale": "stale",
               "unknown": "never seen"}  # fmt: skip
PROBE = re.compile(r"^temp(\d*)_c$")
# Display thresholds only; the limits that alarm (fridge band, battery low, engine hot) are
# the alert rules' (ground.alerts, from config), read by the Dashboard.
SOC_WARN = 50.0
FUEL_LOW, FUEL_WARN = 10.0, 20.0
COOLANT_WARM = 100.0


# --- the summary of one vehicle -------------------------------------------------------------


class Dashboard:
    """Builds what the pages, the API and the stream show, from the board, store and alerts."""

    def __init__(self, board: Board, store: SeriesSource, alerts: AlertSource | None,
                 clock: Clock) -> None:
        self.board = board
        self.store = store
        self.alerts = alerts
        self.clock = clock
        rules = [] if alerts is None else alerts.rules  # none: the default rules' limits
        self.fridge_rule = threshold_rule(rules, "fridge", "temp_c")
        self.band = self.fridge_rule.bounds()  # °C, the cold chain
        self.soc_low = threshold_rule(rules, "battery", "soc_pct").bounds()[0]
        self.coolant_hot = threshold_rule(rules, "engine", "coolant_c").bounds()[1]
        self.zone = board.fleet.zone
        self.names = {v.id: v.name for v in board.fleet.vehicles}

    def now(self) -> datetime:
        return self.clock.now()

    def at(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone).replace(microsecond=0)

    def local(self, moment: datetime | None) -> datetime | None:
        return None if moment is None else self.at(moment)

    def probes(self, s: VehicleState) -> list[str]:
        """The fridge's probes: temp_c, then temp2_c… as the sensor reports them."""
        found = {q for (sensor, q) in s.readings if sensor == "fridge" and PROBE.match(q)}
        found.add("temp_c")
        return sorted(found, key=lambda q: int(PROBE.match(q).group(1) or 1))  # type: ignore[union-attr]

    def _measure(self, s: VehicleState, sensor: str, quantity: str, unit: str) -> Measure:
        ts, value, flag = s.readings.get((sensor, quantity), (None, None, None))
        return Measure(value=value, unit=unit, ts=self.local(ts), flag=flag)

    def summary(self, vehicle: str) -> VehicleOut:
        return VehicleOut(**self._summary_fields(vehicle))

    def detail(self, vehicle: str) -> VehicleDetailOut:
        now = self.now()
        opened = self._open_alerts(vehicle)
        history = [] if self.alerts is None else \
            self.alerts.history(vehicle, now - HISTORY, HISTORY_ROWS + 1)  # fmt: skip
        codes, codes_total = self.codes(vehicle)
        return VehicleDetailOut(
            **self._summary_fields(vehicle, opened),
            # The newest open ones: a database from before the rules were bounded may
            # hold thousands (alerts_open counts them all).
            open_alerts=[self.alert_out(a) for a in opened[-HISTORY_ROWS:]],
            alert_history=sorted((self.alert_out(a) for a in history[:HISTORY_ROWS]),
                                 key=lambda a: a.opened_at, reverse=True),  # fmt: skip
            alert_history_more=len(history) > HISTORY_ROWS or len(opened) > HISTORY_ROWS,
            codes=codes, codes_total=codes_total,
            data_quality=self.data_quality(vehicle),
        )

    def data_quality(self, vehicle: str) -> DataQualityOut:
        s = self.board.state.get(vehicle)
        off = None if s.off_clock_last is None else s.off_clock_last[1]
        fr, en = [], []
        if s.off_clock:
            ahead = off is not None and off > timedelta(0)
            span_fr = span_en = ""
            if off is not None:  # a single unit says enough of a clock that is wrong
                span_fr = " de " + format_timedelta(abs(off), locale="fr")
                span_en = " by " + format_timedelta(abs(off), locale="en")
            fr.append(f"Horloge du bus décalée : {number(s.off_clock, 0)} message(s) mis de "
                      f"côté (le dernier {'en avance' if ahead else 'en retard'}{span_fr}).")
            en.append(f"Bus clock off: {s.off_clock} message(s) set aside (the last "
                      f"{'ahead' if ahead else 'behind'}{span_en}).")
        if s.held_back_count:
            fr.append(f"{number(s.held_back_count, 0)} position(s) invraisemblable(s) "
                      "retenue(s) : un saut impossible depuis la précédente.")
            en.append(f"{s.held_back_count} implausible position(s) held back.")
        return DataQualityOut(
            off_clock=s.off_clock, off_clock_last_s=None if off is None else off.total_seconds(),
            held_back=s.held_back_count, text_fr=" ".join(fr) or "Rien n’a été mis de côté.",
            text_en=" ".join(en) or "Nothing set aside.")

    def _open_alerts(self, vehicle: str) -> list[AlertLike]:
        if self.alerts is None:
            return []
        return [a for a in self.alerts.open_alerts(vehicle) if a.closed_at is None]

    def alert_out(self, a: AlertLike) -> AlertOut:
        return AlertOut(
            id=a.id, vehicle=a.vehicle, rule=a.rule, title_fr=a.title_fr, title_en=a.title_en,
            severity=a.severity, opened_at=self.at(a.opened_at),
            value_at_open=a.value_at_open, acknowledged_by=a.acknowledged_by,
            acknowledged_at=self.local(a.acknowledged_at), closed_at=self.local(a.closed_at),
            last_value=a.last_value, unit=getattr(a, "unit", ""),  # ground.alerts' extras
            key=getattr(a, "key", ""),
        )  # fmt: skip

    def fleet_summary(self, vehicles: list[VehicleOut]) -> Display:
        """Which vehicles have an open alert, the worst first: the top of the fleet's page,
        so that with several buses nobody scrolls to find the one in trouble."""
        alerting = sorted((v for v in vehicles if v.alerts_open),
                          key=lambda v: -SEVERITY_RANK.get(v.alerts_severity or "", 0))
        n = len(vehicles)
        if not alerting:
            return Display(text=f"Aucune alerte ouverte sur {n} véhicule(s). · No open alert "
                                f"on {n} vehicle(s).", state="ok")  # fmt: skip
        said = ", ".join(f"{v.name} ({v.alerts_open} : "
                         f"{SEVERITY_FR.get(v.alerts_severity or '', v.alerts_severity)})"
                         for v in alerting)  # fmt: skip
        worst = SEVERITY_RANK.get(alerting[0].alerts_severity or "", 0)
        return Display(text=f"Alertes ouvertes sur {len(alerting)} véhicule(s) sur {n} : "
                            f"{said}. · Open alerts on {len(alerting)} of {n} vehicle(s).",
                       state="bad" if worst >= 3 else "warn")  # fmt: skip

    def dead_letters(self) -> Display:
        """What the ground set aside of what the buses sent, for the fleet's page."""
        kept, _, purged = self.store.dead_letter_counts()
        if kept == 0 and purged == 0:
            return Display(text="Aucun message inutilisable reçu des bus. "
                                "· No unusable message received from the buses.", state="ok")
        days = number(self.store.dead_letter_limits.keep_days, 0)
        n, p = number(kept, 0), number(purged, 0)
        kept_fr = "conservé" if kept < 2 else "conservés"  # French: 0 and 1 are singular
        purged_fr = "effacé" if purged < 2 else "effacés"
        return Display(
            text=f"Messages des bus inutilisables, mis de côté pour analyse : {n} {kept_fr}, "
                 f"{p} {purged_fr} (conservés {days} jours au plus). · Unusable messages from "
                 f"the buses, set aside for analysis: {n} kept, {p} deleted (kept {days} "
                 "days at most).", state="warn")  # fmt: skip

    def set_aside(self) -> Display | None:
        """The ground's own database found damaged and set aside at a start, if it was."""
        if not self.store.set_aside:
            return None
        names = ", ".join(p.name for p in self.store.set_aside)
        return Display(
            text=f"Base de données du sol endommagée, mise de côté au démarrage et remplacée "
                 f"par une neuve (l'historique d'avant n'y est plus) : {names}. · The "
                 "ground's database was damaged, set aside at a start and replaced by a new "
                 f"one (the history before is not in it): {names}.", state="bad")  # fmt: skip

    def codes(self, vehicle: str) -> tuple[list[CodeOut], int]:
        """The first CODES_SHOWN codes set on the vehicle, by sensor, each once; and how
        many are set in all."""
        s = self.board.state.get(vehicle)
        out: list[CodeOut] = []
        total = 0
        for sensor, (ts, codes) in sorted(s.codes.items()):
            unique = dict.fromkeys(codes)
            total += len(unique)
            for code in list(unique)[: CODES_SHOWN - len(out)]:
                if sensor == "engine":
                    m = meaning(code)
                    fr, en, known = m.fr, m.en, m.known
                else:  # the house battery's alarms carry their own names
                    fr, en, known = code.replace("_", " ").lower(), code, True
                out.append(CodeOut(sensor=sensor, code=code, meaning_fr=fr, meaning_en=en,
                                   known=known, since=self.at(ts)))  # fmt: skip
        return out, total

    def current_stop(self, vehicle: str) -> StopNow | None:
        """Where the bus is consulting now, else where it goes next today."""
        forecasts = self.board.forecasts(vehicle)
        at: Forecast | None = next(
            (f for f in forecasts if f.status in (VisitStatus.ARRIVED, VisitStatus.CONSULTING)),
            None)
        nxt = at or next((f for f in forecasts if f.status in (
            VisitStatus.PLANNED, VisitStatus.EN_ROUTE, VisitStatus.LATE)), None)
        if nxt is None:
            return None
        v = nxt.visit
        return StopNow(
            visit=v.visit, stop=v.stop, commune=v.commune, insee=v.insee, status=nxt.status,
            label_fr=status_label_fr(nxt.status, nxt.delay_min),
            label_en=status_label_en(nxt.status, nxt.delay_min),
            planned_arrive=self.at(v.arrive), arrive=self.at(nxt.arrive),
            depart=self.at(nxt.depart), delay_min=nxt.delay_min, at_stop=at is not None,
            road_left_km=None if nxt.road_left_m is None else nxt.road_left_m / 1000,
        )

    def _summary_fields(self, vehicle: str,
                        opened: list[AlertLike] | None = None) -> dict[str, Any]:
        now = self.now()
        s = self.board.state.get(vehicle)
        presence = s.presence(now, self.board.stale_after)
        pos = s.position
        position = None if pos is None else PositionOut(
            lat=pos.lat, lon=pos.lon, ts=self.at(pos.ts),
            speed_kmh=None if pos.speed is None else round(pos.speed * 3.6, 1))
        stop = self.current_stop(vehicle)
        lo, hi = self.band
        fridge = []
        for q in self.probes(s):
            m = self._measure(s, "fridge", q, "°C")
            in_band = None if m.value is None else lo <= m.value <= hi
            fridge.append(ProbeOut(**m.model_dump(), probe=q, in_band=in_band))
        battery = {q: self._measure(s, "battery", q, u) for q, u in (
            ("soc_pct", "%"), ("voltage_v", "V"), ("current_a", "A"), ("ttg_min", "min"))}
        engine = {q: self._measure(s, "engine", q, u) for q, u in (
            ("fuel_pct", "%"), ("coolant_c", "°C"), ("rpm", "tr/min"), ("speed_kmh", "km/h"),
            ("battery_v", "V"))}
        opened = self._open_alerts(vehicle) if opened is None else opened
        worst = max((a.severity for a in opened), key=lambda x: SEVERITY_RANK.get(x, 0),
                    default=None)  # fmt: skip
        fields: dict[str, Any] = dict(
            id=vehicle, name=self.names.get(vehicle, vehicle), presence=presence,
            last_seen=self.local(s.last_seen), position=position, stop=stop,
            fridge_band=self.band, fridge=fridge, battery=battery, engine=engine,
            alerts_open=len(opened), alerts_severity=worst,
            generated_at=self.local(now),
        )  # fmt: skip
        fridge_open = any(a.rule == self.fridge_rule.id for a in opened)
        fields["display"] = self._display(fields, s, now, fridge_open)
        return fields

    # -- the texts of the tiles ---------------------------------------------------------

    def _old(self, m: Measure, now: datetime) -> bool:
        return m.ts is not None and now - m.ts > OLD_READING

    def _display(self, f: dict[str, Any], s: VehicleState, now: datetime,
                 fridge_open: bool) -> dict[str, Display]:
        d: dict[str, Display] = {}
        presence = f["presence"]
        text = f"{PRESENCE_FR[presence]} · {PRESENCE_EN[presence]}"
        if presence != "online" and s.last_seen is not None:
            text += f" (dernier contact il y a {age(s.last_seen, now)})"
        d["presence"] = Display(text=text, state={"online": "ok", "stale": "warn",
                                                  "offline": "bad"}.get(presence, "unknown"))
        d["where"] = self._where(f, s, now)
        stop: StopNow | None = f["stop"]
        if stop is None:
            d["stop"] = Display(text="Plus d'arrêt prévu aujourd'hui · no more stops today",
                                state="unknown")
            d["delay"] = Display(text="—", state="unknown")
        else:
            if stop.at_stop:
                text = f"À {stop.commune} : {stop.label_fr} · {stop.label_en}, " \
                       f"départ estimé {hm(stop.depart, self.zone)}"  # fmt: skip
            else:
                text = (f"Prochain arrêt : {stop.commune}, arrivée estimée "
                        f"{hm(stop.arrive, self.zone)} "
                        f"(prévue {hm(stop.planned_arrive, self.zone)})")
                if stop.road_left_km is not None:
                    text += f", encore {number(stop.road_left_km)} km de route"
            d["stop"] = Display(text=text, state="ok")
            d["delay"] = self._delay(stop)
        d["fridge"] = self._fridge(f["fridge"], now, fridge_open)
        d["battery"] = self._battery(f["battery"], now)
        d["fuel"] = self._level(f["engine"]["fuel_pct"], now, "%", 0, FUEL_LOW, FUEL_WARN)
        d["engine"] = self._engine(f["engine"], now)
        n, worst = f["alerts_open"], f["alerts_severity"]
        if self.alerts is None:
            d["alerts"] = Display(text="alertes non configurées · alerts not set up",
                                  state="unknown")
        elif n == 0:
            d["alerts"] = Display(text="aucune alerte · no alert", state="ok")
        else:
            word = "alerte ouverte" if n == 1 else "alertes ouvertes"
            rank = SEVERITY_RANK.get(worst or "", 0)
            d["alerts"] = Display(text=f"{n} {word} ({SEVERITY_FR.get(worst or '', worst)}) · "
                                       f"{n} open", state="bad" if rank >= 3 else "warn")
        d["updated"] = Display(text=f"mis à jour à {hms(now, self.zone)}",
                               state="ok")
        return d

    def _delay(self, stop: StopNow) -> Display:
        """Late on the way is the manager's business (amber, red); once the bus is there,
        how late it came is history, said plainly (the next stops have their own ETAs)."""
        late = stop.delay_min
        if stop.at_stop:
            if late < 5:
                return Display(text="arrivé à l'heure · arrived on time", state="ok")
            return Display(text=f"arrivé avec {late} min de retard, en consultation · arrived "
                                f"{late} min late, consulting", state="ok")  # fmt: skip
        if late >= 5:
            return Display(text=f"retard de {late} min · {late} min late",
                           state="bad" if late >= 15 else "warn")
        return Display(text="à l'heure · on time", state="ok")

    def _where(self, f: dict[str, Any], s: VehicleState, now: datetime) -> Display:
        stop: StopNow | None = f["stop"]
        pos = s.position
        if stop is not None and stop.at_stop:
            place = self.board.fleet.stop(stop.stop).place
            return Display(text=f"À {stop.commune}" + (f", {place}" if place else ""),
                           state="ok")
        if pos is None:
            return Display(text="position inconnue · position unknown", state="unknown")
        nearest = min(self.board.fleet.stops,
                      key=lambda st: distance_m(pos.lat, pos.lon, st.lat, st.lon))
        km = distance_m(pos.lat, pos.lon, nearest.lat, nearest.lon) / 1000
        text = f"à {number(km)} km de {nearest.commune}"
        if stop is not None and stop.status in (VisitStatus.EN_ROUTE, VisitStatus.LATE):
            text = f"en route vers {stop.commune}, {text}"
        text += f" ({pos.lat:.4f}, {pos.lon:.4f}, il y a {age(pos.ts, now)})"
        return Display(text=text, state="old" if now - pos.ts > OLD_READING else "ok")

    def _flag(self, m: Measure) -> str:
        return FLAG_FR.get(m.flag or "", m.flag or "pas de mesure · no reading")

    def _fridge(self, probes: list[ProbeOut], now: datetime, alert_open: bool) -> Display:
        lo, hi = self.band
        band = f"plage {number(lo, 0)}–{number(hi, 0)} °C"
        parts, states = [], []
        for p in probes:
            if p.value is None:
                if p.ts is not None:  # a flagged sample: say why, do not show it as a value
                    parts.append(f"{p.probe} : {self._flag(p)}")
                    states.append("warn")
                continue
            word = "dans la plage" if p.in_band else "HORS PLAGE"
            label = "" if len(probes) == 1 else f"{p.probe} : "
            parts.append(f"{label}{number(p.value)} °C ({word})")
            states.append("old" if self._old(p, now) else ("ok" if p.in_band else "bad"))
        if not parts:
            return Display(text=f"pas de mesure · no reading ({band})", state="unknown")
        state = "bad" if "bad" in states else "warn" if "warn" in states else \
            "old" if "old" in states else "ok"  # fmt: skip
        if state == "old":
            ts = max(p.ts for p in probes if p.ts is not None)
            parts.append(f"il y a {age(ts, now)}")
        text = " · ".join(parts) + f" — {band}"
        if alert_open and state in ("ok", "old"):
            # Back in the band, the alert still open: the rule's hysteresis, said, so that a
            # green tile beside "1 open alert (critical)" is not a contradiction.
            rule = self.fridge_rule
            clo, chi = rule.clear_bounds()
            minutes = number(rule.clear_for_s / 60, 0)
            text += (f" — alerte encore ouverte : elle se ferme après {minutes} min entre "
                     f"{number(clo)} et {number(chi)} °C · alert still open: it closes after "
                     f"{minutes} min between {number(clo)} and {number(chi)} °C")  # fmt: skip
            state = "warn"
        return Display(text=text, state=state)

    def _level(self, m: Measure, now: datetime, unit: str, digits: int, low: float,
               warn: float) -> Display:
        if m.value is None:
            return Display(text=self._flag(m), state="unknown")
        state = "bad" if m.value < low else "warn" if m.value < warn else "ok"
        text = f"{number(m.value, digits)} {unit}"
        if self._old(m, now) and m.ts is not None:
            text += f" (il y a {age(m.ts, now)})"
            state = "old"
        return Display(text=text, state=state)

    def _battery(self, b: dict[str, Measure], now: datetime) -> Display:
        soc, volts = b["soc_pct"], b["voltage_v"]
        d = self._level(soc, now, "%", 0, self.soc_low, SOC_WARN)
        if volts.value is not None:
            extra = f"{number(volts.value, 2)} V"
            d = Display(text=extra if soc.value is None else f"{d.text}, {extra}",
                        state="ok" if soc.value is None else d.state)
        return d

    def _engine(self, e: dict[str, Measure], now: datetime) -> Display:
        coolant, rpm = e["coolant_c"], e["rpm"]
        if coolant.value is None and rpm.value is None:
            return Display(text=self._flag(coolant), state="unknown")
        parts, state = [], "ok"
        if coolant.value is not None:
            parts.append(f"liquide de refroidissement {number(coolant.value, 0)} °C")
            state = "bad" if coolant.value > self.coolant_hot else \
                "warn" if coolant.value > COOLANT_WARM else "ok"  # fmt: skip
        if rpm.value is not None:
            parts.append(f"{number(rpm.value, 0)} tr/min")
        newest = max((m.ts for m in (coolant, rpm) if m.ts is not None), default=None)
        if newest is not None and now - newest > OLD_READING:
            parts.append(f"il y a {age(newest, now)}")
            state = "old" if state == "ok" else state
        return Display(text=", ".join(parts), state=state)

    # -- charts -------------------------------------------------------------------------

    def charts(self, vehicle: str) -> list[Chart]:
        end = self.now()
        start = end - timedelta(hours=24)
        s = self.board.state.get(vehicle)
        fridge = [(q, self.store.series(vehicle, "fridge", q, start)) for q in self.probes(s)]
        soc = [("soc_pct", self.store.series(vehicle, "battery", "soc_pct", start))]
        coolant = [("coolant_c", self.store.series(vehicle, "engine", "coolant_c", start))]
        start = window([pts for _, pts in (*fridge, *soc, *coolant)], start, end)
        lo, hi = self.band
        charts = [
            ("chart-fridge", "Température du réfrigérateur", "Fridge temperature", "°C", fridge,
             dict(domain=(-2.0, 14.0), band=(lo, hi))),
            ("chart-soc", "Charge de la batterie cellule", "House battery charge", "%", soc,
             dict(domain=(0.0, 100.0), fixed=True, band=(self.soc_low, 100.0),
                  band_label=f"≥ {number(self.soc_low, 0)} %")),
            ("chart-coolant", "Liquide de refroidissement du moteur", "Engine coolant", "°C",
             coolant, dict(domain=(0.0, 120.0), limit=self.coolant_hot)),
        ]
        return [Chart(fr, en, unit, svg_chart(cid, fr, en, unit, data, start, end, self.zone,
                                              **opts))  # type: ignore[arg-type]
                for cid, fr, en, unit, data, opts in charts]  # fmt: skip

