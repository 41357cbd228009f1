"""Fixes from gpsd, through gpsd-py3, riding through everything gpsd and the network do.

gpsd-py3 (the design's client library, unmaintained since 2017) keeps one connection in
module globals (`gpsd.gpsd_socket`, `gpsd.gpsd_stream`), has no timeout, never reconnects,
and raises when gpsd has no device or no fix yet. `GpsdSource` wraps it:

* the socket gpsd-py3 creates gets a timeout (by lending it, only while it connects, a
  `socket` module whose sockets come with one), so a hung gpsd costs at most ~timeout_s;
* any failure closes the connection; reconnection is tried again on later reads with an
  exponential backoff (0.5 s doubling up to 30 s), so a down gpsd costs a read nothing;
* no device or no fix yet gives a Fix with mode 0/1 and NaN lat/lon;
* one WARNING when an outage starts and one when gpsd is back, not one per poll;
* `stats` counts what happened, for the health report.

Several GpsdSource objects may live in one process (gpsd-py3's globals are swapped in
under a lock around every call), but one is meant to be polled from one thread.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any, TextIO

import gpsd

from medicobus.clock import Clock, SystemClock
from onboard.telemetry.fix import Fix
from onboard.telemetry.guard import count_connection, guarded_read

log = logging.getLogger(__name__)
# gpsd-py3 warns "No gps devices found" at every connection before gpsd has opened the
# receiver; our own log says when GPS is really missing.
logging.getLogger("gpsd").setLevel(logging.ERROR)

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0
MIN_POLL_BUDGET_S = 0.05

_gpsd_lock = threading.Lock()  # gpsd-py3 keeps its connection in module globals


class _SocketsWithTimeout:
    """Stands in for the `socket` module inside gpsd-py3 while it connects: the socket it
    makes has a timeout, so neither connect() nor the welcome readline() can hang."""

    AF_INET = socket.AF_INET
    SOCK_STREAM = socket.SOCK_STREAM

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
        sock = socket.socket(family, kind)
        sock.settimeout(self.timeout_s)
        return sock


class _Garbage(Exception):
    """gpsd (or whatever listens on its port) said something that is not gpsd's JSON."""


class _Closed(Exception):
    """The other end closed the connection."""


class GpsdSource:
    """A GpsSource reading gpsd at host:port. `read()` never raises and never blocks much
    longer than `timeout_s`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 2947,
        timeout_s: float = 3.0,
        clock: Clock | None = None,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.stats: dict[str, int] = {
            "reads": 0,
            "fixes": 0,
            "no_fix": 0,
            "connects": 0,
            "reconnects": 0,
            "connect_failures": 0,
            "disconnects": 0,
            "timeouts": 0,
            "garbage": 0,
            "errors": 0,
        }
        self._sock: socket.socket | None = None
        self._stream: TextIO | None = None
        self._backoff_s = backoff_initial_s
        self._next_attempt = 0.0  # time.monotonic() before which we do not try to connect
        self._outage_since: float | None = None  # monotonic start of the current outage

    # -- the GpsSource interface ------------------------------------------------------

    def read(self) -> Fix | None:
        return guarded_read("gpsd", self.stats, self._read, self._lost)

    def close(self) -> None:
        self._disconnect()

    @property
    def connected(self) -> bool:
        return self._stream is not None

    # -- reading ------------------------------------------------------------------------

    def _read(self) -> Fix | None:
        deadline = time.monotonic() + self.timeout_s
        if self._stream is None and not self._connect():
            return None
        budget = deadline - time.monotonic()
        if budget < MIN_POLL_BUDGET_S:
            return None  # connecting used the time; poll on the next read
        try:
            response = self._poll(budget)
        except TimeoutError:
            self.stats["timeouts"] += 1
            self._lost(f"no answer within {self.timeout_s:g} s")
            return None
        except _Closed:
            self._lost("connection closed by gpsd")
            return None
        except _Garbage as exc:
            self.stats["garbage"] += 1
            self._lost(f"unexpected data: {exc}")
            return None
        except OSError as exc:
            self._lost(f"{type(exc).__name__}: {exc}")
            return None
        self._healthy()
        if response is None:  # gpsd is fine but has no active receiver or no fix yet
            self.stats["no_fix"] += 1
            return Fix(ts=self.clock.now(), lat=math.nan, lon=math.nan, mode=0)
        fix = self._to_fix(response)
        self.stats["fixes" if fix.has_fix else "no_fix"] += 1
        return fix

    def _poll(self, budget_s: float) -> gpsd.GpsResponse | None:
        """One gpsd-py3 `get_current()` within `budget_s`; None when gpsd has no device
        or no fix yet. Raises TimeoutError, _Closed, _Garbage or OSError."""
        assert self._sock is not None
        self._sock.settimeout(budget_s)
        with _gpsd_lock:
            gpsd.gpsd_socket, gpsd.gpsd_stream = self._sock, self._stream
            try:
                return gpsd.get_current()
            except UserWarning:  # 'GPS not active': gpsd has no device open
                return None
            except IndexError:  # an empty tpv (or sky) list: no report yet
                return None
            except json.JSONDecodeError as exc:
                if exc.doc == "":
                    raise _Closed() from None
                raise _Garbage(_excerpt(exc.doc)) from None
            except (KeyError, TypeError, AttributeError) as exc:
                raise _Garbage(f"{type(exc).__name__} {exc}") from None
            except OSError:
                raise
            except Exception as exc:  # gpsd-py3 raises bare Exception for unexpected classes
                raise _Garbage(str(exc)) from None
            finally:
                gpsd.gpsd_socket = gpsd.gpsd_stream = None

    def _to_fix(self, response: gpsd.GpsResponse) -> Fix:
        mode = int(response.mode)
        if mode < 2:
            return Fix(ts=self.clock.now(), lat=math.nan, lon=math.nan, mode=mode)
        speed = float(response.hspeed)
        track = float(response.track)
        # gpsd-py3 says 0 for a field gpsd left out: a stopped receiver often omits track.
        heading = None if speed == 0 and track == 0 else track % 360
        errors: dict[str, Any] = response.error or {}
        epx, epy = float(errors.get("x") or 0), float(errors.get("y") or 0)
        acc = max(epx, epy) if max(epx, epy) > 0 else None
        return Fix(
            ts=parse_gpsd_time(response.time) or self.clock.now(),
            lat=float(response.lat),
            lon=float(response.lon),
            mode=mode,
            speed=speed,
            heading=heading,
            acc=acc,
        )

    # -- connection -----------------------------------------------------------------------

    def _connect(self) -> bool:
        now = time.monotonic()
        if now < self._next_attempt:
            return False
        failure: str | None = None
        with _gpsd_lock:
            saved = gpsd.socket
            gpsd.socket = _SocketsWithTimeout(self.timeout_s)
            gpsd.gpsd_socket = gpsd.gpsd_stream = None
            try:
                gpsd.connect(self.host, self.port)
            except TimeoutError:
                self.stats["timeouts"] += 1
                failure = f"no answer within {self.timeout_s:g} s"
            except OSError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            except json.JSONDecodeError as exc:
                self.stats["garbage"] += 1
                failure = "connection closed" if exc.doc == "" else _excerpt(exc.doc)
            except Exception as exc:  # bare Exception / KeyError from gpsd-py3's handshake
                self.stats["garbage"] += 1
                failure = f"unexpected handshake: {type(exc).__name__} {exc}"
            finally:
                gpsd.socket = saved
            sock, stream = gpsd.gpsd_socket, gpsd.gpsd_stream
            gpsd.gpsd_socket = gpsd.gpsd_stream = None
        if failure is not None:
            _close_quietly(sock, stream)
            self.stats["connect_failures"] += 1
            self._failed(failure)
            return False
        self._sock, self._stream = sock, stream
        count_connection(self.stats)
        return True

    def _lost(self, reason: str) -> None:
        """A connected source just failed: drop the connection, retry soon."""
        if self._stream is not None:
            self.stats["disconnects"] += 1
            self._disconnect()
            self._backoff_s = self.backoff_initial_s
        self._failed(reason)

    def _failed(self, reason: str) -> None:
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
            log.warning(
                "gpsd at %s:%d unavailable (%s); retrying in the background",
                self.host, self.port, reason,
            )
        else:
            log.debug("gpsd at %s:%d still unavailable: %s", self.host, self.port, reason)
        self._next_attempt = now + self._backoff_s
        self._backoff_s = min(self.backoff_max_s, self._backoff_s * 2)

    def _healthy(self) -> None:
        if self._outage_since is not None:
            log.warning(
                "gpsd at %s:%d back after %.1f s",
                self.host, self.port, time.monotonic() - self._outage_since,
            )
            self._outage_since = None
        self._backoff_s = self.backoff_initial_s

    def _disconnect(self) -> None:
        sock, stream = self._sock, self._stream
        self._sock = self._stream = None
        _close_quietly(sock, stream)


def parse_gpsd_time(value: object) -> datetime | None:
    """gpsd's ISO 8601 'time' ('2024-03-04T08:00:07.000Z') as an aware UTC datetime."""
    if not isinstance(value, str) or not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def _excerpt(text: str, limit: int = 60) -> str:
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _close_quietly(sock: socket.socket | None, stream: TextIO | None) -> None:
    for closeable in (stream, sock):
        if closeable is None:
            continue
        try:
            closeable.close()
        except Exception:  # a broken stream may fail to flush on close
            log.debug("closing the gpsd connection failed", exc_info=True)
