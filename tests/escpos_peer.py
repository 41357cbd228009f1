"""A thermal printer's side of the wire, for the tests: a pseudo-terminal the kiosk opens as
its serial printer, whose peer records every byte, answers the real-time paper status
query (DLE EOT 4) as a printer would, and a decoder of the ESC/POS stream it got.

The decoder knows the commands an ESC/POS printer would obey in what python-escpos sends
for a ticket (ESC @ ! a E d t, GS ! V, GS ( k for the QR code, DLE EOT); any other command
byte makes it fail, so a stream it cannot read is a failed test, not a silent pass.
"""

from __future__ import annotations

import os
import select
import threading
import tty
from dataclasses import dataclass, field
from pathlib import Path

from escpos.capabilities import get_profile

PAPER_QUERY = b"\x10\x04\x04"
PAPER_OK, PAPER_OUT = 0x12, 0x72  # status bytes: sensor bits clear; paper end (0x60) set


class PtyPrinter:
    """The printer on the master side of a pseudo-terminal; `port` is the slave's path, or
    with `by_id` a symbolic link to it there, as udev makes /dev/serial/by-id/... for a
    USB adapter (unplugged, the link goes: a pty number another process reuses is never
    taken for the printer)."""

    def __init__(self, paper: bool = True, answer_delay_s: float = 0.0,
                 by_id: Path | None = None) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        os.close(slave)  # the kiosk opens it by name
        self.by_id = by_id
        if by_id is not None:
            by_id.symlink_to(self.port)
            self.port = str(by_id)
        self.paper = paper
        self.answer_delay_s = answer_delay_s
        self.received = bytearray()
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tail = b""  # a query may come split across two reads
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # nobody has the slave open now: the kiosk closed it
                self._stop.wait(0.02)
                continue
            self.received += chunk
            data = tail + chunk
            tail = data[-(len(PAPER_QUERY) - 1):]
            for _ in range(data.count(PAPER_QUERY)):
                self.queries += 1
                self._stop.wait(self.answer_delay_s)
                os.write(self.master, bytes([PAPER_OK if self.paper else PAPER_OUT]))

    def unplug(self) -> None:
        """The cable pulled out: the device goes away."""
        if self.by_id is not None:
            self.by_id.unlink()
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self.master)

    def printed(self) -> Ticket:
        return decode(bytes(self.received).replace(PAPER_QUERY, b""))


@dataclass
class Line:
    text: str
    width: int  # character magnification, 1..8
    height: int
    bold: bool
    align: int  # 0 left, 1 centre, 2 right


@dataclass
class Ticket:
    lines: list[Line] = field(default_factory=list)
    qr: list[str] = field(default_factory=list)  # what each printed QR code holds
    cuts: int = 0

    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


def _codecs() -> dict[int, str]:
    """ESC t's code page numbers, from python-escpos's own printer profile data."""
    found = {}
    for name, number in get_profile().get_code_pages().items():
        try:
            found[int(number)] = "".join(name.lower().split("_"))
            "".encode(found[int(number)])
        except (LookupError, ValueError):
            found.pop(int(number), None)
    return found


def decode(stream: bytes) -> Ticket:
    """The ticket an ESC/POS printer would print from `stream`."""
    codecs = _codecs()
    ticket = Ticket()
    codec, width, height, bold, align = "cp437", 1, 1, False, 0
    text, i = "", 0
    qr_store = b""
    while i < len(stream):
        b = stream[i]
        if b == 0x0A:
            ticket.lines.append(Line(text, width, height, bold, align))
            text, i = "", i + 1
        elif b == 0x1B:  # ESC
            cmd, arg = stream[i + 1], stream[i + 2] if i + 2 < len(stream) else 0
            if cmd == ord("@"):
                codec, width, height, bold, align, i = "cp437", 1, 1, False, 0, i + 2
                continue
            if cmd == ord("!"):
                width = height = 2 if arg & 0x30 else 1
                bold = bool(arg & 0x08)
            elif cmd == ord("a"):
                align = arg
            elif cmd == ord("E"):
                bold = bool(arg)
            elif cmd == ord("t"):
                codec = codecs[arg]
            elif cmd == ord("d"):
                ticket.lines.extend(Line("", width, height, bold, align) for _ in range(arg))
            else:
                raise AssertionError(f"unknown command ESC {cmd:#x} at byte {i}")
            i += 3
        elif b == 0x1D:  # GS
            cmd = stream[i + 1]
            if cmd == ord("!"):
                arg = stream[i + 2]
                width, height, i = (arg >> 4) + 1, (arg & 0x0F) + 1, i + 3
            elif cmd == ord("V"):
                ticket.cuts += 1
                i += 3 if stream[i + 2] in (0, 1, 48, 49) else 4
            elif cmd == ord("(") and stream[i + 2] == ord("k"):
                size = stream[i + 3] | stream[i + 4] << 8
                body = stream[i + 5:i + 5 + size]
                assert body[0] == 49, "a 2D code other than QR"  # cn: QR code
                if body[1] == ord("P"):  # store the data
                    qr_store = body[3:]
                elif body[1] == ord("Q"):  # print what is stored
                    ticket.qr.append(qr_store.decode("ascii"))
                i += 5 + size
            else:
                raise AssertionError(f"unknown command GS {cmd:#x} at byte {i}")
        elif b < 0x20:
            raise AssertionError(f"unknown control byte {b:#x} at byte {i}")
        else:
            text += bytes([b]).decode(codec)
            i += 1
    assert text == "", f"text never fed: {text!r}"
    return ticket
