"""The fleet managers' room, under /fleet and behind its login: `routes` (the router),
`security` (sessions, headers, CSRF), `views` (each vehicle's summary and its texts),
`charts` (SVG), `export` (CSV), `models` (its private JSON API), `dtc` (trouble codes),
`live_map` (the live map's vehicles, stops and routes)."""

from ground.web.fleet.routes import fleet_router

__all__ = ["fleet_router"]
