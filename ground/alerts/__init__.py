"""Alerts on vehicle health: rules from config (`rules`), a series replayed into episodes
(`episodes`), the engine that applies the rules and records their verdicts (`engine`), and
the alerts' SQL (`storage`). Notifications are ground.notify's."""

from ground.alerts.engine import AlertEngine, Event, Notifier
from ground.alerts.rules import (
    DEFAULT_RULES,
    AlertRule,
    AlertRules,
    NewCodeRule,
    NoGpsRule,
    OfflineRule,
    Rule,
    Severity,
    ThresholdRule,
    limits,
)
from ground.alerts.storage import Alert, AlertStorage

__all__ = ["DEFAULT_RULES", "Alert", "AlertEngine", "AlertRule", "AlertRules", "AlertStorage",
           "Event", "NewCodeRule", "NoGpsRule", "Notifier", "OfflineRule", "Rule", "Severity",
           "ThresholdRule", "limits"]
