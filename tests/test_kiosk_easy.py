"""The kiosk for an old hand and an old eye: pictograms on the first two screens (the same
in every language), the whole path by touch alone, and the ticket said aloud by espeak-ng
(Debian's, offline) into a WAV file the test reads; a voice that fails is no crash."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from onboard.kiosk import i18n, voice
from onboard.kiosk.screens.ticket import TicketScreen
from onboard.kiosk.widgets import _HUGE, PICTOGRAMS, Say, Title, huge
from tests.test_kiosk_flows import SIZE, make_kiosk, screen_name

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def voice_done(app) -> None:  # type: ignore[no-untyped-def]
    speaking = [w for w in app.workers if w.group == "voice"]
    if speaking:
        await app.workers.wait_for_complete(speaking)


@pytest.mark.parametrize("lang", ["fr", "en"])
async def test_pictograms_on_the_first_two_screens(tmp_path: Path, lang: str) -> None:
    kiosk = make_kiosk(tmp_path, language=lang)
    try:
        async with kiosk.app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = kiosk.app.screen
            assert str(screen.query_one(Title).render()).startswith(PICTOGRAMS["welcome"])
            assert str(screen.query_one("#choose", Say).render()).startswith(PICTOGRAMS["touch"])
            await pilot.click(f"#lang-{lang}")
            await pilot.pause()
            labels = {b: str(kiosk.app.screen.query_one(f"#{b}").label)
                      for b in ("appointment", "walk-in")}
            assert labels["appointment"].startswith(PICTOGRAMS["appointment"] + " ")
            assert labels["walk-in"].startswith(PICTOGRAMS["walk_in"] + " ")
    finally:
        kiosk.queue.close()
        i18n.set_language(i18n.DEFAULT_LANGUAGE)


async def test_the_ticket_is_said_aloud_by_touch_alone(tmp_path: Path) -> None:
    wav = tmp_path / "said.wav"
    kiosk = make_kiosk(tmp_path)
    kiosk.app.settings = kiosk.app.settings.model_copy(update={
        "speak": True, "voice_command": ["espeak-ng", "-w", str(wav)]})
    try:
        async with kiosk.app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            for button in ("#lang-fr", "#walk-in", "#next"):  # touches only
                await pilot.click(button)
                await pilot.pause()
            kiosk.app.screen.query_one("#answer").value = "Jo"  # type: ignore[attr-defined]
            await pilot.click("#next")
            await pilot.pause()
            kiosk.app.screen.query_one("#answer").value = "1938"  # type: ignore[attr-defined]
            await pilot.click("#next")
            await pilot.pause()
            await pilot.click("#reason-consultation")
            await pilot.pause()
            assert screen_name(kiosk.app) == "TicketScreen"
            screen = kiosk.app.screen
            assert isinstance(screen, TicketScreen)
            assert kiosk.app.spoken(screen) == (
                "Votre numéro est le 1. C'est bientôt à vous. "
                "Asseyez-vous. Nous allons appeler votre numéro.")
            await voice_done(kiosk.app)
        with wave.open(str(wav)) as said:
            seconds = said.getnframes() / said.getframerate()
        assert seconds > 2.0, "espeak-ng said next to nothing"
    finally:
        kiosk.queue.close()


def test_the_number_is_seven_cells_high() -> None:
    rows = huge(12).splitlines()
    assert len(rows) == 7 and all(len(r) == len(rows[0]) for r in rows)
    assert {*"".join(rows)} == {"█", " "}
    # 1 then 2, side by side: the left glyph is the 1's, the right one the 2's
    assert [r[:5] for r in rows] == [g.replace("#", "█") for g in _HUGE["1"]]
    assert [r[7:] for r in rows] == [g.replace("#", "█") for g in _HUGE["2"]]


def test_a_voice_that_fails_is_logged_not_raised(tmp_path: Path) -> None:
    assert not voice.say([str(tmp_path / "no-espeak")], "Bonjour", "fr")
    assert not voice.say(["false"], "Bonjour", "fr")
    assert voice.say(["espeak-ng", "-w", str(tmp_path / "ok.wav")], "Bonjour", "fr")
