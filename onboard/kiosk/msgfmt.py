"""A small msgfmt: compile the kiosk's `.po` catalogs into the `.mo` files gettext reads.

    python -m onboard.kiosk.msgfmt          # compile every locale/*/LC_MESSAGES/kiosk.po
    python -m onboard.kiosk.msgfmt --check  # exit 1 if a committed .mo is out of date

Handles what the kiosk's catalogs use: comments, `msgctxt`-free singular entries, multi-line
strings with the usual C escapes, and the header entry. The output is deterministic (ids
sorted, no hash table), so a test can compare the committed `.mo` with a fresh compilation.
"""

from __future__ import annotations

import argparse
import ast
import struct
import sys
from pathlib import Path

from onboard.kiosk.i18n import DOMAIN, LOCALE_DIR


class PoError(ValueError):
    pass


def parse_po(text: str, source: str = "<po>") -> dict[str, str]:
    """{msgid: msgstr} of a .po file, the header under "" and untranslated entries left out
    (gettext then falls back to the msgid)."""
    entries: dict[str, str] = {}
    msgid: list[str] | None = None
    msgstr: list[str] | None = None
    section = ""
    fuzzy = False

    def flush() -> None:
        nonlocal msgid, msgstr, fuzzy
        if msgid is not None:
            if msgstr is None:
                raise PoError(f"{source}: msgid without msgstr")
            key, value = "".join(msgid), "".join(msgstr)
            if key in entries:
                raise PoError(f"{source}: duplicate msgid {key!r}")
            if value and not (fuzzy and key):
                entries[key] = value
            msgid, msgstr, fuzzy = None, None, False

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("#,") and "fuzzy" in line:
                flush()
                fuzzy = True
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "msgid":
            flush()
            msgid, section = [_string(rest, source, number)], "msgid"
        elif keyword == "msgstr":
            if msgid is None:
                raise PoError(f"{source}:{number}: msgstr before msgid")
            msgstr, section = [_string(rest, source, number)], "msgstr"
        elif keyword in ("msgid_plural", "msgctxt") or keyword.startswith("msgstr["):
            raise PoError(f"{source}:{number}: {keyword} is not supported by this msgfmt")
        elif line.startswith('"'):
            target = msgid if section == "msgid" else msgstr
            if target is None:
                raise PoError(f"{source}:{number}: continuation outside an entry")
            target.append(_string(line, source, number))
        else:
            raise PoError(f"{source}:{number}: cannot read {line!r}")
    flush()
    return entries


def _string(token: str, source: str, number: int) -> str:
    token = token.strip()
    if len(token) < 2 or token[0] != '"' or token[-1] != '"':
        raise PoError(f"{source}:{number}: expected a quoted string, got {token!r}")
    try:
        value = ast.literal_eval(token)
    except (ValueError, SyntaxError) as exc:
        raise PoError(f"{source}:{number}: bad string {token!r}") from exc
    if not isinstance(value, str):
        raise PoError(f"{source}:{number}: bad string {token!r}")
    return value


def compile_entries(entries: dict[str, str]) -> bytes:
    """The GNU .mo format: header, then the tables of ids and of translations, then the
    strings themselves (each NUL-terminated), ids sorted as gettext expects."""
    keys = sorted(entries)
    ids = [k.encode() for k in keys]
    strs = [entries[k].encode() for k in keys]
    count = len(keys)
    header_size = 7 * 4
    ids_table = header_size
    strs_table = ids_table + count * 8
    data_start = strs_table + count * 8
    offsets: list[tuple[int, int]] = []
    data = bytearray()
    for blob in ids + strs:
        offsets.append((len(blob), data_start + len(data)))
        data += blob + b"\0"
    out = bytearray(struct.pack("<7I", 0x950412DE, 0, count, ids_table, strs_table, 0, 0))
    for length, offset in offsets:
        out += struct.pack("<2I", length, offset)
    return bytes(out + data)


def compile_po(path: Path) -> bytes:
    return compile_entries(parse_po(path.read_text(encoding="utf-8"), str(path)))


def extract_messages(sources: list[Path]) -> dict[str, list[str]]:
    """Every literal passed to `_()` or `N_()` in `sources`: {msgid: ["file:line", ...]}."""
    found: dict[str, list[str]] = {}
    for source in sources:
        tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("_", "N_") and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                found.setdefault(node.args[0].value, []).append(f"{source.name}:{node.lineno}")
    return found


def kiosk_sources() -> list[Path]:
    return sorted(p for p in LOCALE_DIR.parent.rglob("*.py"))


def catalogs(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    return sorted(locale_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only check the .mo are current")
    parser.add_argument("--missing", action="store_true",
                        help="list the message ids used in the code but absent from a catalog")
    args = parser.parse_args(argv)
    if args.missing:
        used = extract_messages(kiosk_sources())
        gaps = 0
        for po in catalogs():
            known = parse_po(po.read_text(encoding="utf-8"), str(po))
            for msgid, where in used.items():
                if msgid not in known:
                    gaps += 1
                    print(f"{po.parent.parent.name}: {msgid!r} ({', '.join(where)})")
        return 1 if gaps else 0
    stale = []
    for po in catalogs():
        mo = po.with_suffix(".mo")
        fresh = compile_po(po)
        if mo.exists() and mo.read_bytes() == fresh:
            continue
        if args.check:
            stale.append(mo)
        else:
            mo.write_bytes(fresh)
            print(f"compiled {mo}")
    for mo in stale:
        print(f"out of date: {mo}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
