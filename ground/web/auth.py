"""Who may see the fleet dashboard: users from config, scrypt-hashed passwords, signed
session cookies that expire, and a slowdown for password guessing.

- Passwords are never stored, only `scrypt$n$r$p$salt$hash` (salt and hash in base64):
  scrypt is memory-hard, so a stolen config is expensive to brute-force, and it is in the
  standard library (no new dependency). `python -m ground.web.auth hash` makes one.
- A session is a cookie `user.issued.last.nonce.mac`, HMAC-SHA256 with the server's
  secret. Stateless, so a configured secret keeps managers logged in across a restart of
  the ground service; the MAC also covers a fingerprint of the user's password hash, so
  changing a password in config ends that user's sessions. It expires after 30 min without
  a request (idle) and 12 h after login (absolute), counted on a real-time clock: the
  demo's accelerated clock must not log people out in seconds. Logging out revokes the
  nonce server-side (kept until the absolute limit), as a cookie alone cannot be recalled.
  The MAC is three lines of the standard library's `hmac`, not itsdangerous: its Signer
  (tried) needs a per-user salt for the password fingerprint, a second parse to find the
  user, and a dependency, for no fewer lines; and the CSRF token stays a plain HMAC.
- The CSRF token of a session is derived from its nonce: one per session, never stored.
- Failed logins are counted per client address and per account name. After a few, that
  address must wait, the wait doubling with each further failure (15 min at most): one
  guesser is soon down to four tries an hour. Guessers on many addresses are held by the
  account's count, with a short wait (a minute at most), so that a stranger cannot lock
  the manager out for long. The address is the TCP peer's, or the one a trusted reverse
  proxy forwards (`ground.web.server`): a forged X-Forwarded-For changes nothing. Names
  are counted whether they exist or not (the answers do not tell which). A browser that
  logged in to an account holds a signed "known browser" cookie for it (90 days, sent to
  the login only, as OWASP's device cookies): its attempts on that account are counted
  on their own, so a stranger's failures, even from the same address (a proxy that names
  no client), never hold the manager's usual browser. Unknown users cost the same scrypt
  as known ones, and comparisons are constant-time, so timing tells nothing.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import secrets
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medicobus.clock import Clock, SystemClock

COOKIE = "medicobus_fleet"
DEVICE_COOKIE = "medicobus_browser"  # "this browser logged in to this account before"
DEVICE_LIFETIME = timedelta(days=90)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB and ~50 ms per hash on a Pi-class CPU
SALT_BYTES, KEY_BYTES = 16, 32
MAX_N = 2**20  # refuse absurd parameters that would exhaust memory at login
FAILURE_MEMORY = timedelta(hours=1)  # failures are forgotten this long after the last
MAX_KEYS = 10_000  # a flood of addresses or names must not eat memory


# --- configuration -------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True)
class ScryptHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    @classmethod
    def parse(cls, text: str) -> ScryptHash:
        parts = text.split("$")
        if len(parts) != 6 or parts[0] != "scrypt":
            raise ValueError("password_hash must look like scrypt$n$r$p$salt$hash "
                             "(make one with: python -m ground.web.auth hash)")  # fmt: skip
        try:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            salt, key = _unb64(parts[4]), _unb64(parts[5])
        except ValueError:
            raise ValueError("password_hash: bad number or base64 in scrypt$n$r$p$salt$hash") \
                from None  # fmt: skip
        if n < 2 or n > MAX_N or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
            raise ValueError("password_hash: scrypt parameters out of range")
        if len(salt) < 8 or len(key) < 16:
            raise ValueError("password_hash: salt or hash too short")
        return cls(n, r, p, salt, key)

    def derive(self, password: str) -> bytes:
        return hashlib.scrypt(password.encode("utf-8"), salt=self.salt, n=self.n, r=self.r,
                              p=self.p, dklen=len(self.key),
                              maxmem=256 * self.r * self.n + 1024 * 1024)  # fmt: skip

    def verify(self, password: str) -> bool:
        return hmac.compare_digest(self.derive(password), self.key)


def hash_password(password: str, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A new salted scrypt hash of `password`, as stored in the config."""
    if not password:
        raise ValueError("empty password")
    salt = secrets.token_bytes(SALT_BYTES)
    key = ScryptHash(n, r, p, salt, b"\0" * KEY_BYTES).derive(password)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    return ScryptHash.parse(stored).verify(password)


Role = Literal["fleet", "coordination", "readonly"]
# What each role may change (every role may read every page behind the login): the fleet
# manager acknowledges alerts and downloads the funders' reports, the coordinator (the
# medical assistant) runs the tournée.
MAY: dict[str, frozenset[str]] = {"fleet": frozenset({"alerts", "reports"}),
                                  "coordination": frozenset({"tournee"}),
                                  "readonly": frozenset()}  # fmt: skip
ROLE_FR = {"fleet": "gestion de flotte", "coordination": "coordination",
           "readonly": "lecture seule"}  # fmt: skip


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
    password_hash: str
    role: Role = "fleet"  # the accounts made before roles existed were the fleet managers'

    @field_validator("password_hash")
    @classmethod
    def _well_formed(cls, value: str) -> str:
        ScryptHash.parse(value)  # refuse a plain-text password at load time, not at login
        return value


class AuthSettings(BaseModel):
    """The dashboard's `[dashboard]` table: its users and session settings."""

    model_config = ConfigDict(extra="forbid")
    users: list[User] = []
    # HMAC key of session cookies. Unset: a random one per start (everyone logs in again
    # after a restart). `session_secret_file` is read when set (keeps it out of the config).
    session_secret: str | None = None
    session_secret_file: Path | None = None
    idle_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 30
    absolute_hours: Annotated[int, Field(ge=1, le=7 * 24)] = 12
    # Secure cookies (HTTPS only). None: set when the request came over HTTPS.
    cookie_secure: bool | None = None

    @field_validator("users")
    @classmethod
    def _unique(cls, users: list[User]) -> list[User]:
        names = [u.name for u in users]
        if len(set(names)) != len(names):
            raise ValueError("duplicate user name")
        return users

    def secret(self) -> bytes:
        if self.session_secret_file is not None:
            text = self.session_secret_file.read_text(encoding="utf-8").strip()
            if len(text) < 16:
                raise ValueError(f"{self.session_secret_file}: session secret too short")
            return text.encode("utf-8")
        if self.session_secret:
            return self.session_secret.encode("utf-8")
        return secrets.token_bytes(32)


# --- guessing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """After `free` failures, each further attempt waits 2 s, 4 s, 8 s… at most `longest`."""

    free: int
    longest: timedelta

    def wait(self, failures: int) -> timedelta:
        if failures <= self.free:
            return timedelta(0)
        return min(self.longest, timedelta(seconds=2 ** min(failures - self.free, 30)))


# Typos are human: an address's first three failures cost nothing.
PER_ADDRESS = Backoff(free=3, longest=timedelta(minutes=15))
# More room (several managers behind one office's address make typos too), a short wait.
PER_ACCOUNT = Backoff(free=10, longest=timedelta(minutes=1))


class Failures:
    """Failed logins counted by key (an address, an account name), forgotten an hour after
    the last one or at a success."""

    def __init__(self, backoff: Backoff, clock: Clock) -> None:
        self.backoff = backoff
        self.clock = clock
        self._failures: dict[str, tuple[int, datetime]] = {}  # key -> (count, last)
        self._lock = threading.Lock()

    def wait(self, key: str) -> timedelta:
        """How long `key` must still wait before its next attempt (zero: go ahead)."""
        now = self.clock.now()
        with self._lock:
            count, last = self._failures.get(key, (0, now))
            if now - last > FAILURE_MEMORY:
                self._failures.pop(key, None)
                return timedelta(0)
            return max(timedelta(0), last + self.backoff.wait(count) - now)

    def failed(self, key: str) -> None:
        now = self.clock.now()
        with self._lock:
            count, last = self._failures.get(key, (0, now))
            if now - last > FAILURE_MEMORY:
                count = 0
            self._failures[key] = (count + 1, now)
            if len(self._failures) > MAX_KEYS:  # keep the most recent half
                kept = sorted(self._failures.items(), key=lambda item: item[1][1])
                self._failures = dict(kept[-(MAX_KEYS // 2):])

    def forget(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


# --- sessions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    user: str
    issued: datetime
    last: datetime
    nonce: str
    csrf: str
    role: Role = "readonly"

    def may(self, action: str) -> bool:
        """Whether this session's role may change `action` ("alerts", "tournee")."""
        return action in MAY[self.role]


class Auth:
    """Checks passwords, issues and reads session cookies, slows down guessing."""

    def __init__(self, settings: AuthSettings, clock: Clock | None = None,
                 secret: bytes | None = None) -> None:
        self.settings = settings
        # Wall-clock time on purpose (see the module's docstring).
        self.clock: Clock = clock or SystemClock()
        self._secret = secret or settings.secret()
        self._users = {u.name: ScryptHash.parse(u.password_hash) for u in settings.users}
        self._roles: dict[str, Role] = {u.name: u.role for u in settings.users}
        # Verified against when the user is unknown, so that case takes as long.
        self._dummy = ScryptHash.parse(hash_password(secrets.token_urlsafe(16)))
        self.idle = timedelta(minutes=settings.idle_minutes)
        self.absolute = timedelta(hours=settings.absolute_hours)
        self._revoked: dict[str, datetime] = {}  # nonce -> when it would expire anyway
        self._by_address = Failures(PER_ADDRESS, self.clock)
        self._by_account = Failures(PER_ACCOUNT, self.clock)
        self._by_device = Failures(PER_ADDRESS, self.clock)  # a known browser: as an address
        self._lock = threading.Lock()

    # -- passwords and guessing ---------------------------------------------------------

    def check_password(self, name: str, password: str) -> bool:
        stored = self._users.get(name)
        ok = (stored or self._dummy).verify(password)
        return ok and stored is not None

    def wait_before_login(self, address: str, name: str, device: str | None = None
                          ) -> timedelta:  # fmt: skip
        """How long an attempt from `address` on account `name` must still wait (zero: go
        ahead): the longer of the address's wait and the account's; from a known browser
        of that account (`device`, see `known_browser`), that browser's own wait."""
        if device is not None:
            return self._by_device.wait(device)
        return max(self._by_address.wait(address), self._by_account.wait(name))

    def failed(self, address: str, name: str, device: str | None = None) -> None:
        if device is not None:
            self._by_device.failed(device)
            return
        self._by_address.failed(address)
        self._by_account.failed(name)

    def succeeded(self, address: str, name: str, device: str | None = None) -> None:
        if device is not None:  # says nothing of others' guesses from its address
            self._by_device.forget(device)
            return
        self._by_address.forget(address)
        self._by_account.forget(name)

    def browser_token(self, user: str) -> str:
        """The known-browser cookie of `user`, given at a successful login."""
        issued, nonce = int(self.clock.now().timestamp()), secrets.token_urlsafe(16)
        return f"{user}.{issued}.{nonce}.{self._mac(user, issued, issued, nonce, 'browser')}"

    def known_browser(self, token: str | None, name: str) -> str | None:
        """The browser's id if `token` is a valid, unexpired known-browser cookie of
        account `name` (changing the password ends it), else None."""
        if not token or len(token) > 512:
            return None
        parts = token.rsplit(".", 3)
        if len(parts) != 4 or parts[0] != name or name not in self._users:
            return None
        user, issued_s, nonce, mac = parts
        try:
            issued = int(issued_s)
        except ValueError:
            return None
        expected = self._mac(user, issued, issued, nonce, "browser")
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            return None
        age = self.clock.now() - datetime.fromtimestamp(issued, self.clock.now().tzinfo)
        return nonce if timedelta(0) <= age <= DEVICE_LIFETIME else None

    # -- cookies ------------------------------------------------------------------------

    def _mac(self, user: str, issued: int, last: int, nonce: str, purpose: str = "") -> str:
        # `purpose` keeps a known-browser cookie from ever passing for a session's.
        stored = self._users.get(user)
        fingerprint = stored.key if stored else b""
        prefix = f"{purpose}:".encode() if purpose else b""  # ":" is in no user name
        msg = prefix + f"{user}.{issued}.{last}.{nonce}".encode() + b"." + fingerprint
        return base64.urlsafe_b64encode(
            hmac.new(self._secret, msg, hashlib.sha256).digest()).decode().rstrip("=")

    def _csrf(self, nonce: str) -> str:
        return hmac.new(self._secret, b"csrf." + nonce.encode(), hashlib.sha256).hexdigest()

    def _cookie(self, user: str, issued: int, last: int, nonce: str) -> str:
        return f"{user}.{issued}.{last}.{nonce}.{self._mac(user, issued, last, nonce)}"

    def issue(self, user: str) -> str:
        now = int(self.clock.now().timestamp())
        return self._cookie(user, now, now, secrets.token_urlsafe(16))

    def refresh(self, session: Session) -> str:
        """The same session with its idle timer restarted now."""
        return self._cookie(session.user, int(session.issued.timestamp()),
                            int(self.clock.now().timestamp()), session.nonce)  # fmt: skip

    def read(self, cookie: str | None) -> Session | None:
        """The valid, unexpired session in `cookie`, else None."""
        if not cookie or len(cookie) > 512:
            return None
        parts = cookie.rsplit(".", 4)
        if len(parts) != 5:
            return None
        user, issued_s, last_s, nonce, mac = parts
        try:
            issued, last = int(issued_s), int(last_s)
        except ValueError:
            return None
        if not hmac.compare_digest(mac.encode(), self._mac(user, issued, last, nonce).encode()):
            return None
        if user not in self._users:  # removed from the config since
            return None
        now = self.clock.now()
        issued_at = datetime.fromtimestamp(issued, now.tzinfo)
        last_at = datetime.fromtimestamp(last, now.tzinfo)
        if now - issued_at > self.absolute or now - last_at > self.idle or last < issued:
            return None
        with self._lock:
            if nonce in self._revoked:
                return None
        return Session(user, issued_at, last_at, nonce, self._csrf(nonce), self._roles[user])

    def revoke(self, session: Session) -> None:
        now = self.clock.now()
        with self._lock:
            self._revoked = {n: t for n, t in self._revoked.items() if t > now}
            self._revoked[session.nonce] = session.issued + self.absolute

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(session.csrf.encode(),
                                                         token.encode())  # fmt: skip

    def max_age(self, session: Session) -> int:
        """Seconds until the absolute limit: the browser drops the cookie then."""
        left = session.issued + self.absolute - self.clock.now()
        return max(0, int(left.total_seconds()))


# --- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ground.web.auth",
        description="Make a password hash for a [[dashboard.users]] entry of the ground config.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("hash", help="prompt for a password and print its scrypt hash")
    parser.parse_args(argv)
    if sys.stdin.isatty():
        password = getpass.getpass("Mot de passe / password: ")
        if password != getpass.getpass("Encore une fois / again: "):
            print("Les mots de passe diffèrent / passwords differ", file=sys.stderr)
            return 1
    else:  # piped, for scripts: the first line
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        print("Au moins 8 caractères / at least 8 characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
