"""Alerts on vehicle health, in the order they work: the rules from config (`rules`), a
stored series replayed into episodes (`episodes`), the engine that applies the rules to
what arrived and records their verdicts (`engine`), and the alerts' SQL (`storage`).
Notifications are ground.notify's; what the rest of the ground uses is re-exported here."""

from ground.alerts.engine import AlertEngine, Event
from ground.alerts.rules import (
    DEFAULT_RULES,
    AlertRules,
    NewCodeRule,
    NoGpsRule,
    OfflineRule,
    Rule,
    Severity,
    ThresholdRule,
    limits,
    threshold_rule,
)
from ground.alerts.storage import Alert, AlertStorage

__all__ = ["DEFAULT_RULES", "Alert", "AlertEngine", "AlertRules", "AlertStorage", "Event",
           "NewCodeRule", "NoGpsRule", "OfflineRule", "Rule", "Severity", "ThresholdRule",
           "limits", "threshold_rule"]
