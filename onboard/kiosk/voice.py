"""The kiosk's voice: the ticket said aloud after check-in, for a patient who reads badly
or sees badly (`[kiosk] speak`). espeak-ng (Debian's) speaks offline, in the patient's
language; it runs on a worker thread, so the screen never waits for it, and a voice that
fails (no sound card, no espeak-ng) is logged and the kiosk goes on."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence

log = logging.getLogger(__name__)

VOICES = {"fr": "fr", "en": "en-gb"}  # espeak-ng's voice per kiosk language
TIMEOUT_S = 30.0


def say(command: Sequence[str], text: str, language: str) -> bool:
    """Speak `text` with `command` (espeak-ng and its options), in `language`'s voice.
    Blocks until it is said: call it from a worker thread. False when it could not."""
    voice = VOICES.get(language, language)
    try:
        subprocess.run([*command, "-v", voice, text], check=True, timeout=TIMEOUT_S,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except (OSError, subprocess.SubprocessError) as exc:
        log.error("kiosk: the voice failed (%s)", exc)
        return False
    return True
