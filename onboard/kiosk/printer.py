"""The ticket printed on the kiosk's ESC/POS thermal printer (python-escpos).

A slip (`Slip`) is worded on the kiosk's thread, in the patient's language, and printed by
`TicketPrinter.print` on a worker thread: the device is opened for each ticket and closed
after it, so a printer plugged back in mid-day works again at the next ticket without a
restart. Before printing, a serial or USB printer is asked for its paper (ESC/POS real-time
status, DLE EOT 4); a printer that cannot be opened, has no paper or fails while printing
gives a `PrintResult` saying so: the kiosk shows the ticket on screen anyway and tells staff.
The slip carries a number, a time, the wait and a QR code: never a name.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from onboard.config import PrinterSettings

if TYPE_CHECKING:
    from escpos.escpos import Escpos

log = logging.getLogger(__name__)

NUMBER_SIZE = 8  # the ticket number in characters 8 times as wide and high: the largest


class PrinterState(StrEnum):
    OK = "ok"
    ABSENT = "absent"  # cannot be opened: unplugged, switched off, wrong device
    NO_PAPER = "no_paper"
    FAILED = "failed"  # opened, but printing failed (unplugged while printing)


@dataclass(frozen=True)
class Slip:
    """What one ticket says, worded already: lines above the number, the number, lines
    below it, and the address the QR code opens (None: no QR code)."""

    header: tuple[str, ...]
    number: int
    lines: tuple[str, ...]
    qr: str | None
    footer: tuple[str, ...] = ()


@dataclass(frozen=True)
class PrintResult:
    number: int
    state: PrinterState
    detail: str = ""


def render(printer: Escpos, slip: Slip) -> None:
    """The slip as ESC/POS commands, sent to `printer`."""
    printer.set(align="center", normal_textsize=True, bold=False)
    for line in slip.header:
        printer.textln(line)
    printer.set(align="center", bold=True, custom_size=True, width=NUMBER_SIZE,
                height=NUMBER_SIZE)
    printer.textln(str(slip.number))
    printer.set(align="center", normal_textsize=True, bold=False)
    for line in slip.lines:
        printer.textln(line)
    if slip.qr:
        # Native: the printer draws the code from its text (a few bytes on the wire, sharp
        # at any size), rather than a raster image of it.
        printer.qr(slip.qr, native=True, size=6)  # centred by the alignment above
    for line in slip.footer:
        printer.textln(line)
    printer.cut()


class TicketPrinter:
    """The configured printer. `print` blocks (device I/O): call it from a worker thread.
    One ticket at a time (a lock); `state` is the latest result, for staff."""

    def __init__(self, settings: PrinterSettings) -> None:
        self.settings = settings
        self.state = PrinterState.OK
        self.detail = ""
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return self.settings.kind != "none"

    def device(self) -> Escpos:
        s = self.settings
        profile = {"profile": s.profile} if s.profile else {}
        if s.kind == "serial":
            from escpos.printer import Serial

            return Serial(s.port or "", baudrate=s.baudrate, timeout=s.timeout_s,
                          dsrdtr=False, **profile)
        if s.kind == "usb":
            from escpos.printer import Usb

            return Usb(s.vendor_id, s.product_id, timeout=int(s.timeout_s * 1000), **profile)
        from escpos.printer import File

        return File(s.port or "", **profile)

    def print(self, slip: Slip) -> PrintResult:
        """Print the slip; never raises: what went wrong is in the result."""
        with self._lock:
            result = self._print(slip)
            if result.state != self.state:
                (log.info if result.state == PrinterState.OK else log.error)(
                    "printer: %s%s", result.state.value,
                    f" ({result.detail})" if result.detail else "")
            self.state, self.detail = result.state, result.detail
            return result

    def _print(self, slip: Slip) -> PrintResult:
        # Here, not at the top: python-escpos takes a fifth of a second to import (its
        # printer profiles), which the kiosk's start must not wait for.
        from escpos.exceptions import Error as EscposError

        try:
            printer = self.device()
            printer.open()
        except (EscposError, OSError, ValueError) as exc:
            return PrintResult(slip.number, PrinterState.ABSENT, str(exc).splitlines()[0])
        try:
            if self.settings.kind != "file" and printer.paper_status() == 0:
                return PrintResult(slip.number, PrinterState.NO_PAPER)
            render(printer, slip)
            flush = getattr(printer.device, "flush", None)
            if flush is not None:
                flush()
            return PrintResult(slip.number, PrinterState.OK)
        except Exception as exc:  # pyserial, pyusb and the OS raise many kinds
            return PrintResult(slip.number, PrinterState.FAILED, f"{type(exc).__name__}: {exc}")
        finally:
            try:
                printer.close()
            except Exception:  # a device that went away cannot be closed cleanly
                log.debug("printer: closing failed", exc_info=True)
