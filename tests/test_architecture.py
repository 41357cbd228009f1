"""What docs/architecture.md says of the packages, checked on the code: the bus and the
ground never import each other, `medicobus/` imports neither (but the command and the demo,
which wire them), and no module imports another that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("medicobus", "onboard", "ground")
WIRING = {"medicobus.cli", "medicobus.demo"}  # the command and the demo put both together


def modules() -> dict[str, set[str]]:
    """Every module of the three packages, with the modules of them it imports (anywhere
    in its body, function-level imports included)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    graph: dict[str, set[str]] = {name: set() for name in found}
    for name, path in found.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in found:
                    target = target.rpartition(".")[0]
                # A module importing its own package (or the package its own module) is
                # how a package exposes its parts: not a cycle between rooms.
                if target and not name.startswith(target + ".") \
                        and not target.startswith(name + "."):  # fmt: skip
                    graph[name].add(target)
    return graph


def test_the_bus_and_the_ground_never_import_each_other() -> None:
    graph = modules()
    crossings = [(m, t) for m, targets in graph.items() for t in targets
                 if m.split(".")[0] in ("onboard", "ground")
                 and t.split(".")[0] in ("onboard", "ground")
                 and m.split(".")[0] != t.split(".")[0]]  # fmt: skip
    shared = [(m, t) for m, targets in graph.items() for t in targets
              if m.startswith("medicobus") and m not in WIRING
              and not t.startswith("medicobus")]  # fmt: skip
    assert crossings == [] and shared == []


def test_no_import_cycle() -> None:
    graph = modules()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []
