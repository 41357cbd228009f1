"""The alert rules' configuration, and the limits it gives the dashboard."""

from __future__ import annotations

import math

import pytest
from pydantic import BaseModel, ConfigDict

from ground.alerts import DEFAULT_RULES, AlertRules, NewCodeRule, ThresholdRule, limits
from medicobus.settings import ConfigError, parse_toml


def test_alert_rules_read_from_toml() -> None:
    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        alerts: AlertRules = DEFAULT_RULES

    config = parse_toml("""
[[alerts]]
id = "fridge_temp"
kind = "threshold"
title_fr = "réfrigérateur hors plage"
title_en = "fridge out of range"
severity = "critical"
sensor = "fridge"
quantity = "temp_c"
unit = "°C"
outside = [2.0, 8.0]
for_s = 600
clear_inside = [2.5, 7.5]
clear_for_s = 300

[[alerts]]
id = "offline"
kind = "offline"
title_fr = "véhicule hors ligne"
title_en = "vehicle offline"
after_min = 20
""", Config, "ground.toml")
    fridge, offline = config.alerts
    assert isinstance(fridge, ThresholdRule) and fridge == DEFAULT_RULES[0]
    assert offline.kind == "offline" and offline.after_min == 20
    assert Config().alerts == DEFAULT_RULES  # the defaults when none are given

    with pytest.raises(ConfigError, match=r"alerts\[0\].threshold: .*exactly one of above"):
        parse_toml('[[alerts]]\nid = "x"\nkind = "threshold"\ntitle_fr = "x"\n'
                   'title_en = "x"\nsensor = "s"\nquantity = "q"\nabove = 1\nbelow = 0\n',
                   Config, "ground.toml")
    with pytest.raises(ConfigError, match="clear_inside must lie within"):
        parse_toml('[[alerts]]\nid = "x"\nkind = "threshold"\ntitle_fr = "x"\n'
                   'title_en = "x"\nsensor = "s"\nquantity = "q"\noutside = [2, 8]\n'
                   'clear_inside = [1, 7]\n', Config, "ground.toml")
    with pytest.raises(ConfigError, match="duplicate alert rule id: offline"):
        parse_toml('[[alerts]]\nid = "offline"\nkind = "offline"\ntitle_fr = "a"\n'
                   'title_en = "a"\n[[alerts]]\nid = "offline"\nkind = "no_gps"\n'
                   'title_fr = "b"\ntitle_en = "b"\n', Config, "ground.toml")


def test_limits_are_the_first_threshold_rule_on_the_quantity_else_the_default() -> None:
    fridge = ThresholdRule(id="fridge_cold", title_fr="f", title_en="f", sensor="fridge",
                           quantity="temp_c", outside=(3.0, 6.0))
    battery = ThresholdRule(id="soc", title_fr="b", title_en="b", sensor="battery",
                            quantity="soc_pct", below=40.0, clear_above=45.0)
    coolant = ThresholdRule(id="hot", title_fr="c", title_en="c", sensor="engine",
                            quantity="coolant_c", above=95.0)
    rules = [fridge, battery, coolant]
    assert limits(rules, "fridge", "temp_c") == (3.0, 6.0)
    assert limits(rules, "battery", "soc_pct") == (40.0, math.inf)
    assert limits(rules, "engine", "coolant_c") == (-math.inf, 95.0)
    assert limits([], "fridge", "temp_c") == (2.0, 8.0)  # not configured: the default rule
    assert limits(DEFAULT_RULES, "battery", "soc_pct")[0] == 30.0
    with pytest.raises(LookupError):
        limits(rules, "fridge", "humidity_pct")
    # What breaches is what lies outside those limits.
    assert [battery.breach(v) for v in (39.9, 40.0, 41.0)] == [True, False, False]
    assert [coolant.breach(v) for v in (94.0, 95.0, 95.1)] == [False, False, True]


def test_the_trouble_code_limit_is_configured_with_the_rule() -> None:
    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        alerts: AlertRules = DEFAULT_RULES

    rule = '[[alerts]]\nid = "dtc"\nkind = "new_code"\ntitle_fr = "code"\ntitle_en = "code"\n'
    [codes] = parse_toml(rule + "max_codes = 3\n", Config, "ground.toml").alerts
    assert isinstance(codes, NewCodeRule) and codes.max_codes == 3
    assert (codes.many_title_fr, codes.many_title_en) == ("nombreux codes défaut",
                                                          "many trouble codes")
    assert next(r for r in DEFAULT_RULES if isinstance(r, NewCodeRule)).max_codes == 10
    with pytest.raises(ConfigError, match=r"alerts\[0\]\.new_code\.max_codes"):
        parse_toml(rule + "max_codes = 0\n", Config, "ground.toml")
