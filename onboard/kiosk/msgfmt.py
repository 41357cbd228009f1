"""The kiosk's catalogs, with Babel: compile each `.po` into the `.mo` gettext reads, check
the compiled ones are current, find the messages a catalog lacks.

    python -m onboard.kiosk.msgfmt            # compile every locale/*/LC_MESSAGES/kiosk.po
    python -m onboard.kiosk.msgfmt --check    # exit 1 if a committed .mo is out of date
    python -m onboard.kiosk.msgfmt --missing  # ids used in the code, absent from a catalog

"Current" compares translations, not bytes: Babel writes its version and the date into
the `.mo` header.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from onboard.kiosk.i18n import DOMAIN, LOCALE_DIR

KEYWORDS = {"_": None, "N_": None}  # the first argument of _() and N_() is the message


def catalogs(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    return sorted(locale_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def _translations(catalog: Catalog) -> dict[str, str]:
    """{msgid: msgstr} of what gettext uses: translated entries, not fuzzy, no header.
    (The kiosk has no plural forms: their tuple ids are not kiosk messages.)"""
    return {m.id: m.string for m in catalog
            if isinstance(m.id, str) and isinstance(m.string, str) and m.id and m.string
            and not m.fuzzy}


def po_messages(po: Path) -> dict[str, str]:
    with po.open("rb") as f:
        return _translations(read_po(f))


def mo_messages(po: Path) -> dict[str, str]:
    """The translations compiled next to `po` ({} if never compiled)."""
    mo = po.with_suffix(".mo")
    if not mo.exists():
        return {}
    with mo.open("rb") as f:
        return _translations(read_mo(f))


def compile_po(po: Path) -> None:
    with po.open("rb") as f:
        catalog = read_po(f)
    with po.with_suffix(".mo").open("wb") as f:
        write_mo(f, catalog)


def extract_messages(source_dir: Path = LOCALE_DIR.parent) -> dict[str, list[str]]:
    """Every literal passed to `_()` or `N_()` under `source_dir`: {msgid: ["file:line"]}."""
    found: dict[str, list[str]] = {}
    for filename, line, message, _, _ in extract_from_dir(
            str(source_dir), method_map=[("**.py", "python")], keywords=KEYWORDS):
        if isinstance(message, str):  # always: KEYWORDS take one argument, no plurals
            found.setdefault(message, []).append(f"{Path(filename).name}:{line}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only check the .mo are current")
    parser.add_argument("--missing", action="store_true",
                        help="list the message ids used in the code but absent from a catalog")
    args = parser.parse_args(argv)
    if args.missing:
        used = extract_messages()
        gaps = 0
        for po in catalogs():
            known = po_messages(po)
            for msgid, where in used.items():
                if msgid not in known:
                    gaps += 1
                    print(f"{po.parent.parent.name}: {msgid!r} ({', '.join(where)})")
        return 1 if gaps else 0
    stale = [po for po in catalogs() if mo_messages(po) != po_messages(po)]
    for po in stale:
        if args.check:
            print(f"out of date: {po.with_suffix('.mo')}", file=sys.stderr)
        else:
            compile_po(po)
            print(f"compiled {po.with_suffix('.mo')}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
