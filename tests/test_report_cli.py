"""`medicobus ground report`, as an operator runs it: on the data a demo left behind
(`--data-dir`) and with a ground configuration (operator's name, logo), in a process of
its own; what it writes read back by openpyxl and pdftotext."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import load_workbook

from ground.reports.tables import Hidden, report_tables
from tests.harness import FLEET
from tests.simulated_month import Month

pytestmark = pytest.mark.timeout(120)


def medicobus(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medicobus.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=60, cwd=cwd)


def test_a_demos_month_as_a_spreadsheet(october: Month, tmp_path: Path) -> None:
    done = medicobus("ground", "report", "--month", "2026-10", "--format", "xlsx",
                     "--data-dir", october.dir, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "rapport-activite-2026-10.xlsx"
    t = october.report.total
    assert done.stdout.startswith(f"{out.name}: {t.planned} visites prévues, {t.held} tenues")
    book = load_workbook(out)
    for table in report_tables(october.report):
        rows = list(book[table.name].iter_rows(values_only=True))[1:]
        assert len(rows) == len(table.rows)
        for read, row in zip(rows, table.rows, strict=True):
            assert [str(c) if isinstance(c, Hidden) else c for c in row
                    if not hasattr(c, "year")] == [c for c in read if not hasattr(c, "year")]


def test_with_the_operators_configuration(october: Month, tmp_path: Path) -> None:
    (tmp_path / "logo.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"/>')
    config = tmp_path / "ground.toml"
    config.write_text(f'fleet = "{FLEET}"\ndatabase = "{october.dir / "ground.db"}"\n'
                      '[reports]\noperator = "CC des Collines du Perche"\nlogo = "logo.svg"\n')
    out = tmp_path / "rapport.pdf"
    done = medicobus("ground", "report", "--from", "2026-10-05", "--to", "2026-10-11",
                     "--config", config, "--out", out)
    assert done.returncode == 0, done.stderr
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], check=True,
                          capture_output=True, text=True).stdout
    assert "CC des Collines du Perche" in text
    assert "du lundi 5 octobre 2026 au dimanche 11 octobre 2026" in text


@pytest.mark.parametrize("args, says", [
    (["--month", "2026-13"], "not a month"),
    (["--from", "2026-10-05"], "--from needs --to"),
    (["--from", "2026-10-11", "--to", "2026-10-05"], "before it begins"),
])  # fmt: skip
def test_what_is_wrong_is_said(october: Month, args: list[str], says: str,
                               tmp_path: Path) -> None:
    done = medicobus("ground", "report", *args, "--data-dir", october.dir, cwd=tmp_path)
    assert done.returncode == 2 and says in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_a_missing_data_dir_is_not_made(tmp_path: Path) -> None:
    done = medicobus("ground", "report", "--month", "2026-10", "--data-dir", tmp_path / "no")
    assert done.returncode == 2 and "no ground database" in done.stderr
    assert not (tmp_path / "no").exists()
