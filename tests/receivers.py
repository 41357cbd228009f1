"""Real receivers of the ground's messages, for the tests: an SMTP server (aiosmtpd, with
STARTTLS and a login) that keeps what it is sent, and an HTTP server keeping what is POSTed.
The fixtures `certificate` and `smtp` (tests/conftest.py) start them."""

from __future__ import annotations

import email
import email.policy
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.brokers import free_port


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: SMTPServer, session: Session,
                          envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope, message))
        return "250 OK"

    def authenticate(self, server: SMTPServer, session: Session, envelope: Envelope,
                     mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"s3cret"
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535

    def wait(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"{len(self.messages)} of {count} mails"
            time.sleep(0.05)
        return [m for _, m in self.messages]


def make_certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)  # fmt: skip
    return cert, key


def start_smtp(inbox: Inbox, port: int, certificate: tuple[Path, Path]) -> Controller:
    """A real SMTP server requiring STARTTLS and a login, on `port`; stop() it."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    controller = Controller(inbox, hostname="localhost", port=port, tls_context=context,
                            require_starttls=True, auth_required=True,
                            authenticator=inbox.authenticate)
    controller.start()
    return controller


def serve_smtp(certificate: tuple[Path, Path]) -> Iterator[tuple[Inbox, int]]:
    """An SMTP server (`start_smtp`) on a free port while the test runs."""
    inbox, port = Inbox(), free_port()
    controller = start_smtp(inbox, port, certificate)
    yield inbox, port
    controller.stop()


class Receiver:
    """An HTTP server in a thread that keeps what is POSTed; it answers `status`."""

    def __init__(self, port: int, status: int = 200) -> None:
        self.posts: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                data = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append(json.loads(data))
                outer.headers.append(dict(self.headers))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
