"""A Mosquitto running the production configuration (config/mosquitto/), for the tests.

The shipped mosquitto.conf is used as it is, with only its ports and file paths rewritten to
the test's: the shipped ACL file itself, a password file made with mosquitto_passwd and
certificates made with config/mosquitto/make-certs.sh. So a test that passes here passes
against the configuration the ground host runs.

    secure = start_secure_broker(tmp_path, vehicles=["a", "b"])
    client = new_client(secure.settings("a", tls=True), "bus-a", persistent=False)
    ...
    secure.broker.stop()
"""

from __future__ import annotations

import getpass
import re
import secrets
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from medicobus.mqtt import BrokerSettings, TlsSettings
from tests.brokers import Mosquitto, free_port, wait_for_port

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config" / "mosquitto"
SHIPPED_CONF = CONFIG_DIR / "mosquitto.conf"
SHIPPED_ACL = CONFIG_DIR / "acl"
MAKE_CERTS = CONFIG_DIR / "make-certs.sh"

PLAIN_PORT = 1883  # the ports in the shipped configuration
TLS_PORT = 8883
GROUND = "ground"  # the ground's account, as named in the ACL


class SecureBroker(NamedTuple):
    broker: Mosquitto  # broker.port is the plain (localhost) listener
    passwords: dict[str, str]  # account -> password, vehicles and "ground"
    ca_file: Path  # the CA that signed the TLS listener's certificate
    tls_port: int

    def settings(self, username: str | None, *, tls: bool = False,
                 password: str | None = None, ca_file: Path | None = None) -> BrokerSettings:
        """Settings to reach this broker as `username` (its own password unless given)."""
        if password is None and username is not None:
            password = self.passwords.get(username)
        return BrokerSettings(
            host="127.0.0.1",
            port=self.tls_port if tls else self.broker.port,
            username=username,
            password=password,
            tls=TlsSettings(ca_file=ca_file or self.ca_file) if tls else None,
        )


def make_certs(outdir: Path, *names: str) -> Path:
    """Run the shipped make-certs.sh; return the CA certificate's path."""
    subprocess.run(["sh", str(MAKE_CERTS), str(outdir), *names], check=True,
                   capture_output=True, text=True)
    return outdir / "ca.crt"


def make_password_file(path: Path, accounts: Mapping[str, str]) -> Path:
    """A Mosquitto password file (hashed) made with mosquitto_passwd, readable by the broker."""
    path.unlink(missing_ok=True)
    for i, (user, password) in enumerate(accounts.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(["mosquitto_passwd", *create, "-b", str(path), user, password],
                       check=True, capture_output=True, text=True)
    path.chmod(0o640)
    return path


def rewrite_conf(text: str, *, workdir: Path, log: Path, port: int, tls_port: int,
                 password_file: Path, certs_dir: Path, acl_file: Path = SHIPPED_ACL) -> str:
    """The shipped configuration with its ports, paths and user changed for a test run."""
    paths = {
        "/etc/mosquitto/medicobus/passwd": str(password_file),
        "/etc/mosquitto/medicobus/acl": str(acl_file),
        "/etc/mosquitto/medicobus/certs/": f"{certs_dir}/",
        "/var/lib/mosquitto/": f"{workdir}/",
        "/var/log/mosquitto/mosquitto.log": str(log),
        "/run/mosquitto/mosquitto.pid": str(workdir / "mosquitto.pid"),
    }
    ports = {PLAIN_PORT: port, TLS_PORT: tls_port}
    out = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            out.append(line)
            continue
        for prod, test in paths.items():
            line = line.replace(prod, test)
        if m := re.fullmatch(r"listener\s+(\d+)(\s+\S+)?\s*", line):
            shipped = int(m.group(1))
            if shipped not in ports:
                raise ValueError(f"shipped listener on port {shipped} is unknown to the tests")
            line = f"listener {ports[shipped]} 127.0.0.1"
        line = re.sub(r"^user\s+\S+", f"user {getpass.getuser()}", line)
        if re.search(r"(^|\s)/(etc|var|run)/", line):
            raise ValueError(f"a path of the shipped configuration is not rewritten: {line!r}")
        out.append(line)
    return "\n".join(out) + "\n"


def start_secure_broker(tmp_path: Path, vehicles: Iterable[str] = ("a", "b"), *,
                        passwords: Mapping[str, str] | None = None,
                        acl_file: Path = SHIPPED_ACL) -> SecureBroker:
    """Start Mosquitto with the shipped mosquitto.conf and ACL (or another `acl_file`).

    Accounts: one per vehicle (named like it) and "ground", with random passwords unless
    `passwords` gives some. TLS certificates are for "localhost" and 127.0.0.1.
    """
    workdir = tmp_path / "secure-mosquitto"
    workdir.mkdir(parents=True, exist_ok=True)
    accounts = {v: secrets.token_urlsafe(12) for v in [*vehicles, GROUND]}
    accounts.update(passwords or {})
    password_file = make_password_file(workdir / "passwd", accounts)
    certs_dir = workdir / "certs"
    ca_file = make_certs(certs_dir, "localhost", "127.0.0.1")

    port, tls_port = free_port(), free_port()
    while tls_port == port:
        tls_port = free_port()
    broker = Mosquitto(workdir, port=port)
    # Mosquitto() wrote its own anonymous configuration: replace it with the shipped one.
    broker.conf_path.write_text(rewrite_conf(
        SHIPPED_CONF.read_text(), workdir=workdir, log=broker.log, port=port,
        tls_port=tls_port, password_file=password_file, certs_dir=certs_dir,
        acl_file=acl_file))
    broker.start()
    try:
        wait_for_port(tls_port)
    except TimeoutError:
        broker.stop()
        raise
    return SecureBroker(broker, accounts, ca_file, tls_port)
