"""Loading TOML configuration files with errors a person can act on.

A broken file is reported as `path: line N: ...` for syntax, or `path: key.path: what is
wrong` for content, never as a traceback.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ValidationError, model_validator

M = TypeVar("M", bound=BaseModel)


def _zone_name(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


ZoneName = Annotated[str, AfterValidator(_zone_name)]  # an IANA time zone: "Europe/Paris"


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names file, key and problem."""


def load_toml(path: Path | str, model: type[M]) -> M:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_toml(text, model, source=str(path))


def parse_toml(text: str, model: type[M], source: str) -> M:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line N, column M)".
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            message, loc = err["msg"].removeprefix("Value error, "), err["loc"]
            item = _ITEM.match(message) if not loc else None
            if item is not None:  # a whole-file check naming the item: "timetable[3]: ..."
                loc = (item["table"], int(item["index"]))
                message = message[item.end():]
            got = f" (got {err['input']!r})" if not isinstance(err["input"], dict | list) else ""
            problems.append(f"{source}: {_line_of(text, loc)}{_key_path(loc)}: {message}{got}")
        raise ConfigError("\n".join(problems)) from None


_ITEM = re.compile(r"^(?P<table>\w+)\[(?P<index>\d+)\]: ")


def _line_of(text: str, loc: tuple[int | str, ...]) -> str:
    """ "line N: " of the table a problem is in, when it is the Nth `[[name]]` of the file
    (a fleet's timetable entries, stops...) or a top-level key; else nothing. tomllib
    keeps no positions, so the headers are found in the text."""
    if len(loc) >= 2 and isinstance(loc[0], str) and isinstance(loc[1], int):
        header = re.compile(rf"^\s*\[\[\s*{re.escape(loc[0])}\s*\]\]", re.MULTILINE)
        found = list(header.finditer(text))
        if loc[1] < len(found):
            return f"line {text.count(chr(10), 0, found[loc[1]].start()) + 1}: "
    elif len(loc) >= 1 and isinstance(loc[0], str):
        key = re.search(rf"^\s*{re.escape(loc[0])}\s*=", text, re.MULTILINE)
        if key is not None:
            return f"line {text.count(chr(10), 0, key.start()) + 1}: "
    return ""


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


class Credentials(BaseModel):
    """A user name and its password, given inline or, better, in a file of its own."""

    username: str | None = None
    password: str | None = None
    password_file: Path | None = None  # preferred over `password` in production

    @model_validator(mode="after")
    def _one_password(self) -> Self:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        return self

    def secret(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return self.password
