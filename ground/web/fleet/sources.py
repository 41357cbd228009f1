"""What the dashboard reads from the rest of the ground: the alert engine and the store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ground.alerts import Rule


class AlertLike(Protocol):
    """ground.alerts.Alert, as read here."""

    @property
    def id(self) -> int: ...
    @property
    def vehicle(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def title_fr(self) -> str: ...
    @property
    def title_en(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def opened_at(self) -> datetime: ...
    @property
    def value_at_open(self) -> float | None: ...
    @property
    def acknowledged_by(self) -> str | None: ...
    @property
    def acknowledged_at(self) -> datetime | None: ...
    @property
    def closed_at(self) -> datetime | None: ...
    @property
    def last_value(self) -> float | None: ...


class AlertSource(Protocol):
    """ground.alerts.AlertEngine, as used here."""

    @property
    def rules(self) -> Sequence[Rule]: ...
    def open_alerts(self, vehicle: str | None = None) -> Sequence[AlertLike]: ...
    def history(self, vehicle: str, since: datetime,
                limit: int | None = None) -> Sequence[AlertLike]: ...
    def acknowledge(self, alert_id: int, person: str) -> AlertLike: ...
    def get(self, alert_id: int) -> AlertLike: ...


class SeriesSource(Protocol):
    """ground.store.Store, as used here."""

    def series(self, vehicle: str, sensor: str, quantity: str,
               since: datetime) -> list[tuple[datetime, float | None, str | None]]: ...


Sample = tuple[datetime, float | None, str | None]
