"""The printed ticket: a check-in at the kiosk (Textual's Pilot) prints on a serial ESC/POS
printer played on a pseudo-terminal, whose byte stream the test decodes as a printer would;
a printer absent, out of paper or unplugged mid-day leaves the ticket on screen and tells
staff; a device file (the usblp driver's) gets the same stream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot

from medicobus import contract
from medicobus.demo import kiosk_config
from onboard.config import KioskSettings, OnboardSettings, PrinterSettings, load_onboard
from onboard.kiosk import i18n
from onboard.kiosk.app import build_app
from onboard.kiosk.printer import NUMBER_SIZE, PrinterState, Slip, TicketPrinter
from onboard.kiosk.widgets import Problem, Say
from onboard.plan import PlanStore
from tests.clocks import ManualClock
from tests.escpos_peer import PtyPrinter, decode
from tests.test_kiosk_flows import (
    NOW,
    SIZE,
    VISIT,
    Kiosk,
    enter_staff,
    make_kiosk,
    screen_name,
    start,
    type_answer,
    walk_in_second,
)

pytestmark = pytest.mark.anyio
FOLLOW = "https://medicobus.example.org"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def peer() -> Iterator[PtyPrinter]:
    printer = PtyPrinter()
    yield printer
    if not printer._stop.is_set():
        printer.unplug()


def serial(port: str) -> TicketPrinter:
    return TicketPrinter(PrinterSettings(kind="serial", port=port, timeout_s=0.2))


def kiosk_with(tmp: Path, printer: TicketPrinter) -> Kiosk:
    return make_kiosk(tmp, printer=printer, follow_url=FOLLOW)


async def check_in(pilot: Pilot[None], name: str = "NDIAYE", birth: str = "7.3.1948") -> None:
    await start(pilot)
    await type_answer(pilot, name)
    await type_answer(pilot, birth)
    await pilot.click("#yes")
    await pilot.pause()
    assert screen_name(pilot.app) == "TicketScreen"  # type: ignore[arg-type]


async def printed(pilot: Pilot[None]) -> None:
    """Wait for the printer's worker (the patient's path waits on the ticket screen)."""
    printing = [w for w in pilot.app.workers if w.group == "printer"]
    if printing:  # (none: it is done already; an empty list would wait for every worker)
        await pilot.app.workers.wait_for_complete(printing)
    await pilot.pause()


def unprinted_shown(kiosk: Kiosk) -> bool:
    return bool(kiosk.app.screen.query_one("#unprinted", Say).display)


async def test_a_check_in_prints_a_ticket(tmp_path: Path, peer: PtyPrinter) -> None:
    kiosk = kiosk_with(tmp_path, serial(peer.port))
    try:
        async with kiosk.app.run_test(size=SIZE) as pilot:
            await check_in(pilot)
            await printed(pilot)
            assert not unprinted_shown(kiosk)
        [ticket] = kiosk.queue.tickets()
        assert ticket.token and len(ticket.token) >= 22
        slip = peer.printed()
        assert slip.cuts == 1 and peer.queries == 1  # the paper was asked for first
        big = [line for line in slip.lines if line.width == line.height == NUMBER_SIZE]
        assert [line.text for line in big] == [str(ticket.number)]
        assert big[0].bold and big[0].align == 1
        text = slip.text()
        assert "Médicobus · Longny-les-Villages" in text and "Votre numéro" in text
        assert "Arrivée à 9 h 00" in text  # 08:00 UTC, in Paris
        assert "C'est bientôt à vous." in text  # nobody before
        assert "Suivez votre tour sur votre téléphone :" in text
        assert slip.qr == [f"{FOLLOW}/t/{ticket.token}"]
        for secret in ("Diaye", "DIAYE", "1948", "N.", "RDV-1001"):  # never who it is
            assert secret not in text and secret not in slip.qr[0]
    finally:
        kiosk.queue.close()


async def test_the_ticket_is_in_the_patients_language(tmp_path: Path,
                                                      peer: PtyPrinter) -> None:
    kiosk = kiosk_with(tmp_path, serial(peer.port))
    try:
        kiosk.queue.open("2026-03-10-longny")
        kiosk.queue.check_in_walk_in("A.", 1950, "other")
        async with kiosk.app.run_test(size=SIZE) as pilot:
            await walk_in_second(pilot)
            await printed(pilot)
            on_screen = [str(kiosk.app.screen.query_one(f"#{id_}", Say).render())
                         for id_ in ("ahead", "wait")]
        text = peer.printed().text()
        assert "Your number" in text and "Follow your turn" in text
        assert on_screen[0] == "People before you: 1"
        for line in on_screen:  # the paper says what the screen says
            assert f"\n{line}\n" in text
    finally:
        kiosk.queue.close()
        i18n.set_language(i18n.DEFAULT_LANGUAGE)


async def test_printing_never_holds_the_screen(tmp_path: Path) -> None:
    slow = PtyPrinter(answer_delay_s=0.8)  # a printer slow to answer its status
    printer = TicketPrinter(PrinterSettings(kind="serial", port=slow.port, timeout_s=2))
    kiosk = kiosk_with(tmp_path, printer)
    try:
        async with kiosk.app.run_test(size=SIZE) as pilot:
            await check_in(pilot)
            assert slow.printed().cuts == 0, "the screen waited for the printer"
            await printed(pilot)
            assert printer.state == PrinterState.OK
        deadline = time.monotonic() + 2
        while slow.printed().cuts == 0 and time.monotonic() < deadline:
            time.sleep(0.02)  # what the peer has read of it
        assert slow.printed().cuts == 1
    finally:
        slow.unplug()
        kiosk.queue.close()


async def test_out_of_paper_keeps_the_ticket_on_screen_and_tells_staff(
        tmp_path: Path, peer: PtyPrinter) -> None:
    peer.paper = False
    kiosk = kiosk_with(tmp_path, serial(peer.port))
    try:
        async with kiosk.app.run_test(size=SIZE) as pilot:
            await check_in(pilot)
            await printed(pilot)
            assert unprinted_shown(kiosk)
            assert "Retenez bien votre numéro" in str(
                kiosk.app.screen.query_one("#unprinted", Say).render())
            assert peer.printed().lines == [] and peer.printed().cuts == 0
            await pilot.click("#done")
            await pilot.pause()
            await enter_staff(pilot)
            assert kiosk.app.screen.query_one("#printer", Problem).text == (
                "Imprimante sans papier : tickets à l'écran seulement.")
        assert kiosk.queue.tickets()[0].status == "waiting"  # checked in all the same
        # ... and the ground, whose trouble-code rule tells the fleet managers
        readings = [contract.parse_uplink(r.payload) for r in kiosk.outbox.after(0, 1000)
                    if r.kind == "reading"]
        assert [(m.sensor, m.codes) for m in readings] == [  # type: ignore[union-attr]
            ("printer", ["no_paper"])]
    finally:
        kiosk.queue.close()


async def test_unplugged_mid_day_then_plugged_back(tmp_path: Path) -> None:
    by_id = tmp_path / "usb-printer-if00"  # as /dev/serial/by-id/ names the adapter
    peer = PtyPrinter(by_id=by_id)
    printer = serial(str(by_id))
    kiosk = kiosk_with(tmp_path, printer)
    try:
        async with kiosk.app.run_test(size=SIZE) as pilot:
            await check_in(pilot)
            await printed(pilot)
            assert printer.state == PrinterState.OK and peer.printed().cuts == 1
            await pilot.click("#done")
            await pilot.pause()

            peer.unplug()  # the device goes away
            await enter_staff(pilot)
            assert kiosk.app.screen.query_one("#printer", Problem).text == ""
            await pilot.press("escape")
            await pilot.pause()
            await check_in(pilot, "Lefevre Dupont", "23/11/1952")
            await printed(pilot)
            assert printer.state == PrinterState.ABSENT
            assert unprinted_shown(kiosk)
            await enter_staff(pilot)
            staff = kiosk.app.screen.query_one("#printer", Problem)
            assert staff.text.startswith("Imprimante introuvable")

            back = PtyPrinter(by_id=by_id)  # plugged in again: a new device, the same link
            kiosk.queue.check_in_walk_in("B.", 1960, "other")
            result = printer.print(Slip(("Médicobus",), 3, (), None))
            assert result.state == PrinterState.OK
            kiosk.app.printed(result)
            await pilot.pause()
            assert staff.text == "", "staff still told of a printer that works again"
            told = [contract.parse_uplink(r.payload) for r in kiosk.outbox.after(0, 1000)
                    if r.kind == "reading"]
            assert [m.codes for m in told] == [["absent"], []]  # type: ignore[union-attr]
            back.unplug()
        assert [t.number for t in kiosk.queue.tickets()] == [1, 2, 3]
    finally:
        kiosk.queue.close()


def test_no_device_at_all(tmp_path: Path) -> None:
    printer = serial(str(tmp_path / "ttyUSB9"))
    started = time.monotonic()
    result = printer.print(Slip(("Médicobus",), 7, (), None))
    assert result.state == PrinterState.ABSENT and result.number == 7
    assert "ttyUSB9" in result.detail
    assert time.monotonic() - started < 2


def test_a_device_file_gets_the_same_stream(tmp_path: Path) -> None:
    device = tmp_path / "lp0"
    device.touch()
    printer = TicketPrinter(PrinterSettings(kind="file", port=str(device)))
    slip = Slip(("Médicobus · Nocé", "Votre numéro"), 42, ("Arrivée à 14 h 05",),
                f"{FOLLOW}/t/abc")
    assert printer.print(slip).state == PrinterState.OK
    ticket = decode(device.read_bytes())
    assert [line.text for line in ticket.lines if line.width == NUMBER_SIZE] == ["42"]
    assert ticket.text().startswith("Médicobus · Nocé\nVotre numéro\n42\nArrivée à 14 h 05")
    assert ticket.qr == [f"{FOLLOW}/t/abc"] and ticket.cuts == 1


def test_printer_settings_need_their_device() -> None:
    for bad in ({"kind": "serial"}, {"kind": "file"}, {"kind": "usb", "vendor_id": 0x04B8}):
        with pytest.raises(ValueError):
            PrinterSettings(**bad)  # type: ignore[arg-type]
    assert not TicketPrinter(PrinterSettings()).configured


async def test_the_demo_kiosk_prints_a_decodable_ticket(tmp_path: Path) -> None:
    """The demo's bus, as `medicobus demo` configures it: a walk-in's ticket is printed
    into the file it names, with the QR code of the phone page on the demo's ground."""
    key = tmp_path / "checkin.key"
    key.write_text("demo-key")
    bus = OnboardSettings(vehicle="perche-1", data_dir=tmp_path / "bus",
                          kiosk=KioskSettings(key_file=key))
    paper = bus.data_dir / "ticket-printer.bin"
    config = tmp_path / "onboard.toml"
    config.write_text(kiosk_config(bus, "http://127.0.0.1:8080", paper, 8099))
    settings = load_onboard(config)
    assert settings.display.port == 8099 and settings.display.speech
    clock = ManualClock(NOW)
    PlanStore(settings.data_dir / "plan.db").save(contract.Plan(
        vehicle="perche-1", ts=NOW, day=NOW.date(), visits=[VISIT]))
    app = build_app(settings, clock, visit_poll_s=0.1)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await walk_in_second(pilot)
            await printed(pilot)
        [ticket] = app.queue.tickets()
        slip = decode(paper.read_bytes())
        assert [line.text for line in slip.lines if line.width == NUMBER_SIZE] == ["1"]
        assert slip.qr == [f"http://127.0.0.1:8080/t/{ticket.token}"] and slip.cuts == 1
    finally:
        app.queue.close()
        i18n.set_language(i18n.DEFAULT_LANGUAGE)
