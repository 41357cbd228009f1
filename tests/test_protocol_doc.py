"""docs/protocol.md stays honest: each JSON example is a valid message of its section."""

from __future__ import annotations

import json
import re
from pathlib import Path

from medicobus import contract

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"


def examples() -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S)]


def test_every_kind_has_a_valid_example() -> None:
    kinds = []
    for example in examples():
        if example["kind"] == "batch":  # the doc shortens item ids for reading
            for item in example["items"]:
                item["id"] = item["id"] * 4
        payload = json.dumps(example)
        parse = {"plan": contract.parse_plan, "appointments": contract.parse_appointments,
                 "ack": contract.parse_ack}
        message = parse.get(example["kind"], contract.parse_uplink)(payload)
        kinds.append(message.kind)
        assert message.vehicle == "perche-1"
    assert sorted(kinds) == sorted(["ack", "appointments", "batch", "event", "plan",
                                    "position", "queue", "reading", "status", "summary",
                                    "ticket"])


def test_topics_in_the_doc_are_the_contracts() -> None:
    text = DOC.read_text()
    for channel in contract.Channel:
        assert f"`{contract.topic('{vehicle}', channel)}`" in text
