"""A real VictoriaMetrics (Debian's `victoria-metrics`), which accepts InfluxDB's
`/api/v2/write`: the server the InfluxDB export path is tested against, since InfluxDB 2
itself is not installable here."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.brokers import free_port, wait_for_port

BINARY = "/usr/bin/victoria-metrics"


class Victoria:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Victoria:
        binary = shutil.which("victoria-metrics") or BINARY
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "victoria.log").open("ab")
        self.process = subprocess.Popen(
            [binary, f"-storageDataPath={self.workdir / 'data'}",
             f"-httpListenAddr=127.0.0.1:{self.port}",
             # Test points carry today's time; a long retention keeps any of them.
             "-retentionPeriod=100y", "-search.disableCache",
             # Points become searchable at once instead of after the usual 30 s.
             "-search.latencyOffset=0s"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for_port(self.port, timeout=20)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def _get(self, path: str, **params: str) -> bytes:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
            return bytes(response.read())

    def flush(self) -> None:
        """Make what was written searchable now (it is buffered for about a second)."""
        self._get("/internal/force_flush")

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every stored series matching `match` with all its samples (JSON lines)."""
        self.flush()
        text = self._get("/api/v1/export", **{"match[]": match}).decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def samples(self, metric: str, **labels: str) -> list[tuple[int, float]]:
        """(timestamp ms, value) of one metric, all its series merged, oldest first."""
        selector = ",".join([f'__name__="{metric}"', *(f'{k}="{v}"' for k, v in labels.items())])
        out = [(t, v) for series in self.export("{" + selector + "}")
               for t, v in zip(series["timestamps"], series["values"], strict=True)]
        return sorted(out)
