"""The day's bookings: from the platform's CSV to digests on the bus, names never leaving
the import, and never crossing the air."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pytest

from ground.appointments import BookingError, hashed, read_bookings
from ground.fleet import load_fleet
from ground.store import Store
from medicobus import contract
from medicobus.brokers import Mosquitto
from medicobus.cli import main
from medicobus.mqtt import BrokerSettings, new_client
from onboard.link import Link
from onboard.outbox import Outbox
from onboard.plan import PlanStore
from tests.harness import FLEET, VEHICLE, ground, wait_until

MONDAY = date(2026, 11, 23)
KEY = b"a fleet secret of reasonable length"
CSV = (
    "ID RDV;Heure;Nom;Prénom;Date de naissance\n"
    "A-1001;08:45;N'Diaye;Amadou;07/03/1948\n"
    "A-1002;09:15;Lefèvre-Dupont;Marie;1951-11-02\n"
    "A-1003;14:30;Œuvray;Jean;12/12/1939\n"
)
NAMES = ("Diaye", "DIAYE", "Lef", "LEF", "Amadou", "Marie", "vray", "07/03/1948", "1948-03-07",
         "1951-11-02", "12/12/1939", "1939-12-12")


def write_csv(tmp_path: Path, text: str = CSV, encoding: str = "utf-8") -> Path:
    path = tmp_path / "export.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_bookings_become_digests_in_their_visits(tmp_path: Path) -> None:
    fleet = load_fleet(FLEET)
    appointments = hashed(read_bookings(write_csv(tmp_path), MONDAY, fleet), fleet, VEHICLE,
                          MONDAY, KEY)
    assert [(a.appointment, a.visit, a.time.strftime("%H:%M")) for a in appointments.items] == [
        ("A-1001", "2026-11-23/noce/am", "08:45"),
        ("A-1002", "2026-11-23/noce/am", "09:15"),
        ("A-1003", "2026-11-23/pervencheres/pm", "14:30"),
    ]
    # What a patient types at the kiosk, however they type it, gives the same digest.
    typed = contract.identity_digest(KEY, MONDAY, "ndiaye", date(1948, 3, 7))
    assert appointments.items[0].identity == typed
    assert contract.identity_digest(KEY, MONDAY, "LEFEVRE DUPONT", date(1951, 11, 2)) \
        == appointments.items[1].identity
    wire = appointments.to_json().decode()
    assert not any(n in wire for n in NAMES)


def test_a_windows_spreadsheet_export_reads_too(tmp_path: Path) -> None:
    fleet = load_fleet(FLEET)
    english = CSV.replace("ID RDV;Heure;Nom;Prénom;Date de naissance",
                          "appointment,time,last name,first name,birth date").replace(";", ",")
    assert len(read_bookings(write_csv(tmp_path, english, "cp1252"), MONDAY, fleet)) == 3


@pytest.mark.parametrize(("text", "expected"), [
    ("Heure;Nom;Naissance\n08:45;X;01/01/1950\n", "line 1: no column for appointment"),
    (CSV + "A-9;25:99;Martin;Paul;01/01/1950\n", "line 5: time '25:99'"),
    (CSV + "A-9;10:00;Martin;Paul;31/02/1950\n", "line 5: birth date '31/02/1950'"),
    (CSV + "A-9;10:00;;Paul;01/01/1950\n", "line 5: no last name"),
])  # fmt: skip
def test_bad_exports_say_where(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(BookingError, match=expected):
        read_bookings(write_csv(tmp_path, text), MONDAY, load_fleet(FLEET))


def test_a_booking_outside_every_visit_is_refused(tmp_path: Path) -> None:
    fleet = load_fleet(FLEET)
    bookings = read_bookings(write_csv(tmp_path, CSV + "A-9;13:00;Martin;Paul;01/01/1950\n"),
                             MONDAY, fleet)
    with pytest.raises(BookingError, match="A-9 at 13:00"):
        hashed(bookings, fleet, VEHICLE, MONDAY, KEY)


def test_imported_bookings_reach_the_bus_as_digests_only(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    key_file = tmp_path / "checkin.key"
    key_file.write_bytes(KEY)
    config = tmp_path / "ground.toml"
    config.write_text(f'fleet = "{FLEET}"\ndatabase = "{tmp_path / "ground.db"}"\n'
                      f'checkin_key_file = "{key_file}"\n[broker]\nport = {mosquitto.port}\n',
                      encoding="utf-8")  # fmt: skip
    g = ground(tmp_path, mosquitto.port)  # the same database as the config's
    seen: list[bytes] = []  # everything that crosses the broker
    spy = new_client(BrokerSettings(port=mosquitto.port), "spy", persistent=False)
    spy.on_message = lambda c, u, m: seen.append(m.payload)
    spy.on_connect = lambda c, u, f, r, p: c.subscribe("#", 1)
    spy.connect("127.0.0.1", mosquitto.port)
    spy.loop_start()

    store = PlanStore(tmp_path / "bus" / "plan.db")
    got = threading.Event()

    def receive(message: contract.Plan | contract.Appointments) -> None:
        if isinstance(message, contract.Appointments):
            store.save_appointments(message)
            got.set()

    link = Link(BrokerSettings(port=mosquitto.port), VEHICLE,
                Outbox(tmp_path / "bus" / "outbox.db"), receive)
    link.start()
    assert main(["ground", "--config", str(config), "--import-appointments",
                 str(write_csv(tmp_path)), "--date", MONDAY.isoformat()]) == 0
    wait_until(got.is_set, what="the appointments on the bus")
    on_bus = store.load_appointments()
    assert on_bus is not None and len(on_bus.items) == 3
    everything = b" ".join(seen) + (tmp_path / "ground.db").read_bytes()
    for name in NAMES:
        assert name.encode() not in everything
    link.stop()
    spy.loop_stop()
    g.stop()


def test_past_days_bookings_are_forgotten(tmp_path: Path) -> None:
    from ground.store import Store

    fleet = load_fleet(FLEET)
    store = Store(tmp_path / "g.db")
    bookings = read_bookings(write_csv(tmp_path), MONDAY, fleet)
    store.save_appointments(hashed(bookings, fleet, VEHICLE, MONDAY, KEY))
    assert store.forget_appointments(before=MONDAY) == 0
    assert store.forget_appointments(before=date(2026, 11, 24)) == 1
    assert store.appointments(MONDAY) == []


def test_an_import_waits_for_the_running_service_to_finish_writing(tmp_path: Path) -> None:
    """What failed in CI: the import's upsert reads the table first, and a transaction that
    has read cannot wait for another writer. It must wait for the lock, not fail."""
    path = tmp_path / "ground.db"
    fleet = load_fleet(FLEET)
    appointments = hashed(read_bookings(write_csv(tmp_path), MONDAY, fleet), fleet, VEHICLE,
                          MONDAY, KEY)
    service, importer = Store(path), Store(path)
    importer.appointments(MONDAY)  # the import's connection has read the file before
    service.db.execute("BEGIN IMMEDIATE")  # the service in the middle of an ingest batch
    service.db.execute("INSERT INTO dead_letters (received, topic, error, size, payload) "
                       "VALUES ('2026-11-23T07:00:00+00:00', 't', 'e', 1, x'00')")
    threading.Timer(0.5, lambda: service.db.execute("COMMIT")).start()
    importer.save_appointments(appointments)  # waits the half-second, then writes
    assert Store(path).appointments(MONDAY) == [appointments]
