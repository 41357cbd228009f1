"""The ground's HTTP server: its `[http]` settings and the uvicorn configuration they make.

Behind a reverse proxy every request comes from the proxy's address: the client's is in
the `X-Forwarded-For` header the proxy adds. Anyone can send that header, so it is
believed only from the addresses in `trusted_proxies` (default: none, the header is
ignored). uvicorn's own proxy-headers middleware does the work (rightmost untrusted
address of the chain, and `X-Forwarded-Proto` for the scheme); uvicorn's default would
trust localhost, which is wrong for a server on a host where other users or services run.
The RFC 7239 `Forwarded` header is never believed: proxies must send `X-Forwarded-For`
(nginx: `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`; Caddy and
Traefik do by default).
"""

from __future__ import annotations

from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork

# Forms of a few fields; the public API takes no body at all.
MAX_BODY_BYTES = 64 * 1024


class HttpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    # Addresses or networks of reverse proxies whose X-Forwarded-For/-Proto are believed.
    trusted_proxies: list[IPvAnyNetwork] = []
    # Strict-Transport-Security on every answer: only when the site is reached over HTTPS
    # alone (browsers then refuse plain http to it for a year).
    hsts: bool = False
    # Larger request bodies get 413 before they are read (Content-Length checked first,
    # a chunked body cut while it streams).
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = MAX_BODY_BYTES


def server_config(app: FastAPI, settings: HttpSettings, **extra: Any) -> uvicorn.Config:
    """uvicorn's configuration for `app` under `settings` (`extra`: more uvicorn options)."""
    trusted = [str(net) for net in settings.trusted_proxies]
    return uvicorn.Config(app, host=settings.host, port=settings.port,
                          proxy_headers=bool(trusted), forwarded_allow_ips=trusted,
                          **extra)  # fmt: skip
