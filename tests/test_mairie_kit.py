"""The mairie's kit, for every commune of the demo fleet on the real Board: the A4 poster
(rendered by pdftoppm, read by pdftotext, its QR code decoded by zbarimg), the embeddable
block (framed in Chromium by an allowed site, refused to another), the Atom feed (parsed),
and the text ready to copy on the commune page."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from datetime import date, datetime
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect

from ground.fleet import Cancellation, load_fleet
from ground.web.app import create_app
from ground.web.public.kit import KitSettings
from tests.brokers import free_port
from tests.test_web_browser import _wait
from tests.test_web_pages import NOCE, LiveServer, Scene, text_of

ATOM = "{http://www.w3.org/2005/Atom}"
BASE = "http://testserver"


@pytest.fixture
def scene() -> Scene:
    fleet = load_fleet("medicobus/defaults/fleet.toml")
    return Scene(fleet.model_copy(update={"cancellations": [
        Cancellation(date=date(2026, 11, 30), stop="noce", half="am", reason="Médecin absent"),
    ]}))  # fmt: skip


@pytest.fixture
def client(scene: Scene) -> Iterator[TestClient]:
    with TestClient(create_app(scene.board)) as c:
        yield c


def pdf_text(pdf: Path) -> str:
    """The PDF's words on one line, a name broken at its hyphen joined again."""
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout
    return re.sub(r"(\w)-\s+(\w)", r"\1-\2", " ".join(text.split()))


def test_a_poster_for_every_commune(client: TestClient, scene: Scene, tmp_path: Path) -> None:
    for stop in scene.fleet.stops:
        r = client.get(f"/communes/{stop.insee}/affiche.pdf")
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
        pdf = tmp_path / f"{stop.insee}.pdf"
        pdf.write_bytes(r.content)
        text = pdf_text(pdf)
        assert f"Le médicobus à {stop.commune}" in text
        assert "Passages en novembre 2026" in text and "Prendre rendez-vous" in text
        assert "Consultations avec ou sans rendez-vous" in text
        assert f"{BASE}/communes/{stop.insee}" in text
        subprocess.run(["pdftoppm", "-r", "150", "-png", "-singlefile", str(pdf),
                        str(tmp_path / stop.insee)], check=True)  # fmt: skip
        png = tmp_path / f"{stop.insee}.png"
        size = subprocess.run(["file", str(png)], capture_output=True, text=True).stdout
        assert "1241 x 1754" in size, size  # one A4 page at 150 dpi
        qr = subprocess.run(["zbarimg", "--quiet", "--raw", str(png)], capture_output=True,
                            text=True, check=True).stdout.split()  # fmt: skip
        assert qr == [f"{BASE}/communes/{stop.insee}"], "the QR code opens the live page"


def test_the_poster_has_the_months_visits(client: TestClient, tmp_path: Path) -> None:
    pdf = tmp_path / "noce.pdf"
    pdf.write_bytes(client.get(f"/communes/{NOCE}/affiche.pdf").content)
    text = pdf_text(pdf)
    # Nocé: Monday mornings and Wednesday afternoons, every week of November 2026
    for day in ("lundi 2 novembre, matin, 08:30 – 10:30",
                "mercredi 4 novembre, après-midi, 14:00 – 17:30",
                "lundi 23 novembre, matin, 08:30 – 10:30"):
        assert day in text, day
    assert "mercredi 11 novembre, après-midi, 14:00 – 17:30 : annulé (Jour férié (Armistice))" \
        in text  # fmt: skip
    assert "lundi 30 novembre, matin, 08:30 – 10:30 : annulé (Médecin absent)" in text
    assert "décembre" not in text.split("Prendre rendez-vous")[0]
    assert client.get("/communes/99999/affiche.pdf").status_code == 404


def test_the_feed_lists_visits_and_changes(client: TestClient) -> None:
    r = client.get(f"/communes/{NOCE}/feed.atom")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(r.content)
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}title") == "Médicobus à Nocé"
    assert feed.findtext(f"{ATOM}id") == f"tag:medicobus,2026:commune/{NOCE}"
    entries = {e.findtext(f"{ATOM}id"): e for e in feed.findall(f"{ATOM}entry")}
    today = entries["tag:medicobus,2026:visit/2026-11-23/noce/am"]
    assert today.findtext(f"{ATOM}title") == \
        "Médicobus à Nocé : lundi 23 novembre, matin, 08:30 – 10:30"  # fmt: skip
    cancelled = entries["tag:medicobus,2026:visit/2026-11-30/noce/am"]
    assert "annulé (Médecin absent)" in (cancelled.findtext(f"{ATOM}summary") or "")
    assert cancelled.findtext(f"{ATOM}updated") == "2026-11-23T07:00:00+00:00"  # when told
    for entry in entries.values():
        datetime.fromisoformat(entry.findtext(f"{ATOM}updated") or "")  # RFC 3339
        assert entry.find(f"{ATOM}link").get("href") == f"{BASE}/communes/{NOCE}"  # type: ignore[union-attr]
    days = sorted(e.split("/")[1] for e in entries)
    assert days[0] == "2026-11-16" and days[-1] <= "2026-12-24"  # last week, a month ahead


def test_the_commune_page_links_the_kit_and_the_text_to_copy(client: TestClient) -> None:
    html = client.get(f"/communes/{NOCE}").text
    for path in ("affiche.pdf", "embed", "feed.atom"):
        assert f'href="/communes/{NOCE}/{path}"' in html
    relay = unescape(html.split('<textarea id="relay" rows="7" readonly>')[1].split("</")[0])
    assert relay.splitlines() == [
        "Le médicobus vient à Nocé (Place de l'église) :",
        "- lundi 23 novembre, matin, 08:30 – 10:30",
        "- mercredi 25 novembre, après-midi, 14:00 – 17:30",
        "- mercredi 2 décembre, après-midi, 14:00 – 17:30",
        "- lundi 7 décembre, matin, 08:30 – 10:30",
        "Attention : lundi 30 novembre, matin, 08:30 – 10:30 : annulé (Médecin absent).",
        f"Heure d'arrivée en direct : {BASE}/communes/{NOCE}",
    ]


def test_the_block_is_framed_only_by_the_allowed_sites(scene: Scene) -> None:
    with TestClient(create_app(scene.board)) as client:
        r = client.get(f"/communes/{NOCE}/embed")
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "prévu" in text_of(r.text)
    kit = KitSettings(embed_ancestors=["https://www.mairie-noce.fr", "http://127.0.0.1:8000"])
    with TestClient(create_app(scene.board, kit=kit)) as client:
        csp = client.get(f"/communes/{NOCE}/embed").headers["content-security-policy"]
        assert "frame-ancestors https://www.mairie-noce.fr http://127.0.0.1:8000;" in csp
        # every other page still refuses to be framed
        assert "frame-ancestors 'none'" in client.get(f"/communes/{NOCE}").headers[
            "content-security-policy"]
    with pytest.raises(ValueError):
        KitSettings(embed_ancestors=["*"])


class _MairieSite(BaseHTTPRequestHandler):
    frame = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = f'<html><body><iframe src="{self.frame}" width="400" height="300"></iframe>' \
               "</body></html>"  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


def test_a_mairie_site_frames_the_live_block(scene: Scene,
                                             browser: Browser) -> None:
    port = free_port()
    site = ThreadingHTTPServer(("127.0.0.1", port), _MairieSite)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        for allowed in (True, False):
            ancestors = [f"http://127.0.0.1:{port}"] if allowed else ["https://elsewhere.fr"]
            app = create_app(scene.board, kit=KitSettings(embed_ancestors=ancestors))
            with LiveServer(app) as server:
                _MairieSite.frame = f"{server.url}/communes/{NOCE}/embed"
                page = browser.new_page()
                try:
                    page.goto(f"http://127.0.0.1:{port}/")
                    frame = page.frame_locator("iframe")
                    if allowed:
                        expect(frame.locator("#nv-status")).to_have_text("prévu")
                        assert _wait(lambda: scene.listeners() >= 1), "no live stream"
                        scene.driving_towards_noce(km=30)
                        expect(frame.locator("#nv-status")).to_have_text("retard de 15 min")
                    else:
                        page.wait_for_timeout(1000)
                        assert frame.locator("#nv-status").count() == 0, "framed elsewhere"
                finally:
                    page.close()
    finally:
        site.shutdown()
