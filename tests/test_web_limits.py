"""Request bodies limited before they are read: a 64 MB login form, announced or chunked,
gets 413 at once from the real uvicorn server (in a process of its own, to watch its
memory), which stays up; and the new `[http]` settings are checked with the key named."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from medicobus.cli import main
from tests.brokers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
BIG = 64 * 1024 * 1024
CHUNK = 64 * 1024
# The dashboard of tests/test_fleet_pages, served as the ground service serves it.
SERVER = """
import sys
from pathlib import Path
import uvicorn
from ground.web.server import HttpSettings, server_config
from tests.test_fleet_pages import FleetScene
app = FleetScene(Path(sys.argv[2])).app()
uvicorn.Server(server_config(app, HttpSettings(port=int(sys.argv[1])), log_level="warning",
                             lifespan="off")).run()
"""


class Server:
    def __init__(self, port: int, process: subprocess.Popen[bytes]) -> None:
        self.port, self.process = port, process

    def peak_rss_kb(self) -> int:
        """The server's highest resident memory so far (VmHWM), in kB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines()
                        if line.startswith("VmHWM:")))  # fmt: skip


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port),
                                str(tmp_path / "ground.db")], cwd=ROOT)  # fmt: skip
    try:
        wait_for_port(port, timeout=30)
        yield Server(port, process)
    finally:
        process.terminate()
        process.wait(timeout=10)


def post_big(port: int, chunked: bool) -> tuple[bytes, float]:
    """POSTs a 64 MB form to the login, streamed, while reading the answer; returns the
    answer's head and how long it took to come."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BIG}"
    sock.sendall(f"POST /fleet/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                 f"Content-Type: application/x-www-form-urlencoded\r\n{length}\r\n\r\n"
                 .encode())  # fmt: skip
    start = time.monotonic()
    sent = 0

    def send_all() -> None:
        nonlocal sent
        chunk = b"name=" + b"a" * (CHUNK - 5)
        framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
        try:
            while sent < BIG:
                sock.sendall(framed)
                sent += CHUNK
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server closed the connection: what we want
            pass

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(4096)
        if not data:
            break
        head += data
    took = time.monotonic() - start
    sock.close()
    sender.join(timeout=20)
    assert sent < BIG, "the server let the whole body in"
    return head, took


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_64_mb_form_gets_413_at_once_and_costs_no_memory(server: Server,
                                                          chunked: bool) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
        assert client.get("/fleet/login").status_code == 200
        wrong = client.post("/fleet/login", data={"name": "claire", "password": "x"})
        assert wrong.status_code == 401  # a form of normal size is read and judged
        before = server.peak_rss_kb()
        head, took = post_big(server.port, chunked)
        assert head.startswith(b"HTTP/1.1 413 "), head[:200]
        assert took < 5.0, f"413 after {took:.1f} s"
        grew = server.peak_rss_kb() - before
        assert grew < 16 * 1024, f"the server's memory grew by {grew // 1024} MB"
        # and it goes on serving
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.post("/fleet/login", data={"name": "claire", "password": "x"}
                           ).status_code in (401, 429)  # fmt: skip


@pytest.mark.parametrize(("table", "key", "problem"), [
    ('trusted_proxies = ["the proxy"]', "http.trusted_proxies[0]", "network"),
    ('trusted_proxies = "127.0.0.1"', "http.trusted_proxies", "list"),
    ("max_body_bytes = 10", "http.max_body_bytes", "greater than or equal to 1024"),
    ('hsts = "sometimes"', "http.hsts", "boolean"),
])  # fmt: skip
def test_bad_http_settings_are_reported_by_key(tmp_path: Path, table: str, key: str,
                                               problem: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "ground.toml"
    config.write_text(f'fleet = "{ROOT}/medicobus/defaults/fleet.toml"\n[http]\n{table}\n',
                      encoding="utf-8")
    assert main(["ground", "--config", str(config), "--check"]) == 2
    err = capsys.readouterr().err
    assert f"{key}: " in err and problem in err and "Traceback" not in err, err
