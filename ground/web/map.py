"""The live map's background: where its tiles come from (`[map]` in the ground's config).

The map's vehicles, stops and routes are drawn by the ground's own script over whatever
tiles load: a tile server out of reach leaves a blank background, never an empty map. The
Content-Security-Policy lets images come from this site and from the tile server's origin,
derived here from the configured URL, and from nowhere else (`ground.web.headers`).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

OSM_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_COPYRIGHT = "https://www.openstreetmap.org/copyright"
PLACEHOLDERS = ("{z}", "{x}", "{y}")


def _web_url(value: str) -> str:
    """An http(s) URL with a host: what the browser may be sent to."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if any(c.isspace() or c in "'\";" for c in value):  # would break out of the CSP header
        raise ValueError("must not contain spaces, quotes or semicolons")
    return value


def _tile_template(value: str) -> str:
    _web_url(value)
    missing = [p for p in PLACEHOLDERS if p not in value]
    if missing:
        raise ValueError(f"tile URL template lacks {', '.join(missing)} "
                         "(e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png)")
    if "{" in urlsplit(value).netloc:  # {s} subdomains: the CSP needs one fixed origin
        raise ValueError("the tile server's host must be fixed (no {s} or other "
                         "placeholder before the path)")
    return value


TileTemplate = Annotated[str, AfterValidator(_tile_template)]
WebUrl = Annotated[str, AfterValidator(_web_url)]


class MapSettings(BaseModel):
    """`[map]`: the tile server of the live map (default OpenStreetMap's) and the credit
    its licence asks for, shown on the map."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tiles: TileTemplate = OSM_TILES
    attribution: Annotated[str, Field(min_length=1, max_length=200)] = \
        "© OpenStreetMap contributors"  # fmt: skip
    attribution_url: WebUrl | None = OSM_COPYRIGHT  # the attribution links there
    max_zoom: Annotated[int, Field(ge=1, le=22)] = 19

    @property
    def tile_origin(self) -> str:
        """The tile server's origin (scheme, host, port), as a CSP source."""
        parts = urlsplit(self.tiles)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
