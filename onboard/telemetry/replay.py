"""A real gpsd fed from an NMEA log by gpsfake, on a free port: for the tests, and for the
demo when gpsd is installed.

gpsfake (Debian `gpsd-clients`) starts its own gpsd (`gpsd -b -N -S PORT -F CONTROL`)
listening on loopback only, makes a pseudo-terminal, tells gpsd about it through the control
socket and writes the log into it, one sentence every `cycle` seconds, looping over the log
unless `once`. Quirks met (gpsd 3.22, running as root):

* always pass -P: without it gpsfake uses gpsd's default port 2947, the system gpsd's;
* the control socket is $TMPDIR/gpsfake-<pid>.sock: TMPDIR is set to the work dir;
* root is fine: gpsd drops privileges but still opens gpsfake's pty; it logs "unable to
  connect to the DBUS system bus" on stderr, harmlessly;
* gpsd listens ~0.3 s after gpsfake starts; the first client's WATCH takes ~1 s to answer
  (gpsd opens the device); the first fix follows one or two cycles later;
* gpsfake does not feed gpsd until a client connects, unless -n (`nowait`) is given;
* gpsd reports the fix as merged so far in the current cycle, several times a cycle
  (nmea.py puts RMC first so the first report has the position);
* gpsfake runs gpsd as its child: the whole process group is stopped together.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from medicobus.brokers import free_port, wait_for_port
from onboard.telemetry.fix import Fix
from onboard.telemetry.nmea import nmea_log


class GpsFake:
    """`with GpsFake(tmp_path, fixes) as fake:` -> a gpsd on 127.0.0.1:fake.port."""

    def __init__(
        self,
        workdir: Path,
        fixes: Iterable[Fix] | None = None,
        *,
        nmea: str | None = None,
        cycle_s: float = 0.05,
        once: bool = False,
        nowait: bool = True,
        port: int | None = None,
    ) -> None:
        binary = shutil.which("gpsfake")
        if binary is None:
            raise RuntimeError("gpsfake is not installed (Debian package gpsd-clients)")
        if shutil.which("gpsd") is None and not Path("/usr/sbin/gpsd").exists():
            raise RuntimeError("gpsd is not installed (Debian package gpsd)")
        self.binary = binary
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "gpsfake.nmea"
        text = nmea if nmea is not None else nmea_log(fixes or [])
        self.log_path.write_text(text, newline="")
        self.cycle_s = cycle_s
        self.once = once
        self.nowait = nowait
        self.port = port or free_port()
        self.stderr_path = workdir / "gpsfake.err"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        cmd = [self.binary, "-q", "-P", str(self.port), "-c", str(self.cycle_s)]
        if self.once:
            cmd.append("-1")
        if self.nowait:
            cmd.append("-n")
        return [*cmd, str(self.log_path)]

    def start(self) -> GpsFake:
        env = dict(os.environ, TMPDIR=str(self.workdir))
        env["PATH"] = env.get("PATH", "") + ":/usr/sbin"
        with self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                self.command(), cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
            )
        try:
            wait_for_port(self.port, timeout=10)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"gpsfake did not start: {self.stderr()}") from None
        return self

    def stop(self) -> None:
        """Stop gpsfake and its gpsd (one process group, started by us)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        # gpsd may outlive gpsfake by a moment: make sure the group is gone
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def __enter__(self) -> GpsFake:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
