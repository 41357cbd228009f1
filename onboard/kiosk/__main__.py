"""`python -m onboard.kiosk`: the kiosk, for a terminal or behind textual-serve.

    python -m onboard.kiosk --config /etc/medicobus/onboard.toml
    MEDICOBUS_ONBOARD_CONFIG=/etc/medicobus/onboard.toml python -m onboard.kiosk
    python -m onboard.kiosk --config FILE --serve --host 127.0.0.1 --port 8000

With `--serve`, textual-serve publishes the kiosk as a web page (one kiosk process per
browser connection; a single touchscreen browser in kiosk mode opens exactly one).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

CONFIG_ENV = "MEDICOBUS_ONBOARD_CONFIG"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m onboard.kiosk",
                                     description="The médicobus check-in kiosk.")
    parser.add_argument("config_file", nargs="?", type=Path, help="onboard TOML file")
    parser.add_argument("--config", type=Path, default=None,
                        help=f"onboard TOML file (default: ${CONFIG_ENV})")
    parser.add_argument("--serve", action="store_true", help="serve it over HTTP (textual-serve)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    config = args.config or args.config_file or os.environ.get(CONFIG_ENV)
    if not config:
        parser.error(f"give the onboard config file (--config FILE or ${CONFIG_ENV})")
    path = Path(config).resolve()

    if args.serve:
        from textual_serve.server import Server

        command = shlex.join([sys.executable, "-m", "onboard.kiosk", "--config", str(path)])
        Server(command, host=args.host, port=args.port, title="Médicobus").serve()
        return 0

    from medicobus.clock import clock_from_env
    from medicobus.settings import ConfigError
    from onboard.config import load_onboard
    from onboard.kiosk.app import run_kiosk

    try:
        settings = load_onboard(path)
    except ConfigError as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return 2
    run_kiosk(settings, clock_from_env(os.environ))  # the demo shares its accelerated clock
    return 0


if __name__ == "__main__":
    sys.exit(main())
