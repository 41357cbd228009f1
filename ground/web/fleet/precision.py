"""How good the ETAs the ground published were, for the fleet managers: the accuracy record
(ground/eta_record.py) scored against the arrivals the buses reported, by horizon, for the
whole fleet, per vehicle, per stop and per week, on a page and as CSV (every role reads)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ground.accuracy import Row, Scored, table, tables_by, week_of
from ground.eta_record import as_csv
from ground.fleet import Fleet
from ground.web.auth import Session
from ground.web.fleet.export import asked_days, local_span
from ground.web.fleet.security import Guard

DEFAULT_DAYS = 28  # four weeks: each weekday's visits scored four times
Scorer = Callable[[datetime, datetime], Sequence[Scored]]  # since, until -> scored


def precision_router(scorer: Scorer, fleet: Callable[[], Fleet], today: Callable[[], date],
                     guard: Guard, page: Callable[..., Response]) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    page_user = Depends(guard.page_session)
    asked = Depends(_days)

    def scored(start: date | None, end: date | None) -> tuple[date, date, Sequence[Scored]]:
        first, last = asked_days(start, end, today(), DEFAULT_DAYS)
        return first, last, scorer(*local_span(first, last, fleet().zone))

    @router.get("/precision", response_class=HTMLResponse)
    async def precision(request: Request, session: Session = page_user,
                        days: Days = asked) -> Response:
        try:
            first, last, found = await run_in_threadpool(scored, *days)
        except ValueError as exc:
            return page(request, "fleet_error.html", session, status_code=422,
                        title_fr="Période invalide", title_en="Invalid period",
                        message=str(exc))  # fmt: skip
        names = {v.id: v.name for v in fleet().vehicles}
        communes = {s.id: s.commune for s in fleet().stops}
        return page(request, "fleet_precision.html", session, first=first, last=last,
                    count=len(found), fleet_rows=table(found),
                    groups=[("Par véhicule", "By vehicle", _named(tables_by(
                                found, lambda s: s.prediction.vehicle), names)),
                            ("Par arrêt", "By stop", _named(tables_by(
                                found, lambda s: s.prediction.stop), communes)),
                            ("Par semaine", "By week", _named(tables_by(found, week_of),
                                                              {}))])  # fmt: skip

    @router.get("/precision.csv")
    async def precision_csv(request: Request, session: Session = page_user,
                            days: Days = asked) -> Response:
        try:
            first, last, found = await run_in_threadpool(scored, *days)
        except ValueError as exc:
            return guard.finish(request, JSONResponse({"detail": str(exc)}, 422), session)
        name = f"precision-eta-{first.isoformat()}_{last.isoformat()}.csv"
        return guard.finish(request, Response(
            as_csv(found, fleet().zone), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'}), session)

    return router


Days = tuple[date | None, date | None]


def _days(start: Annotated[date | None, Query(alias="from")] = None,
          end: Annotated[date | None, Query(alias="to")] = None) -> Days:
    """The page's and the CSV's `from` and `to`, as asked (checked by `asked_days`)."""
    return start, end


def _named(tables: dict[Hashable, list[Row]], names: dict[str, str]
           ) -> list[tuple[str, list[Row]]]:
    return [(names.get(str(key), str(key)), rows) for key, rows in tables.items()]


def minutes(value: float | None, signed: bool = False) -> str:
    """ "3,2 min", "+1,0 min", "—" for no prediction: the page's figures, French style."""
    if value is None:
        return "—"
    text = f"{value:+.1f}" if signed else f"{value:.1f}"
    return text.replace(".", ",").replace("-", "−") + " min"


def share(value: float | None) -> str:
    return "—" if value is None else f"{round(value * 100)} %"


FILTERS: dict[str, Any] = {"minutes": minutes, "share": share}
