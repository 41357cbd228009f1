"""The kiosk's words, through gettext: one catalog per language in `locale/<lang>/`.

Textual has no translation layer of its own, so every string a patient or the assistant
reads goes through `_()` here. The language is switched at runtime, per patient session
(the welcome screen's big buttons), and reset to the configured default when the kiosk
clears itself for the next patient. Message ids are the English text; a third language is
one more `locale/<lang>/LC_MESSAGES/kiosk.po`, compiled with `python -m onboard.kiosk.msgfmt`.

Strings that must be defined before a language is known (class attributes, tables) are
marked with `N_()` and translated with `_()` where they are shown.
"""

from __future__ import annotations

import gettext
from pathlib import Path

DOMAIN = "kiosk"
LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LANGUAGE = "fr"

# The name of each language in that language, for the welcome screen's buttons; never
# translated (a patient looks for their own language's name).
LANGUAGE_NAMES = {"fr": "Français", "en": "English"}

_catalogs: dict[str, gettext.NullTranslations] = {}
_current: gettext.NullTranslations = gettext.NullTranslations()
_language = ""


def available_languages() -> list[str]:
    """Languages with a compiled catalog, French first."""
    found = sorted(p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))
    return sorted(found, key=lambda lang: (lang != DEFAULT_LANGUAGE, lang))


def language_name(lang: str) -> str:
    return LANGUAGE_NAMES.get(lang, lang)


def catalog(lang: str) -> gettext.NullTranslations:
    if lang not in _catalogs:
        try:
            _catalogs[lang] = gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang])
        except OSError:  # no catalog: show the message ids (English) rather than crash
            _catalogs[lang] = gettext.NullTranslations()
    return _catalogs[lang]


def set_language(lang: str) -> None:
    global _current, _language
    _current = catalog(lang)
    _language = lang


def current_language() -> str:
    return _language


def _(message: str) -> str:
    """The message in the session's language."""
    return _current.gettext(message)


def N_(message: str) -> str:  # noqa: N802 - the gettext convention
    """Mark a message for translation without translating it yet."""
    return message


set_language(DEFAULT_LANGUAGE)
