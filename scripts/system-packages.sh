#!/usr/bin/env bash
# Installs the Debian packages the tests need (real Mosquitto, gpsd + gpsfake, Chromium,
# openssl, iproute2 + nftables for the network namespaces and packet loss of
# tests/test_field_network.py), Pango and fonts for WeasyPrint and poppler-utils to read
# the PDFs back (the reports), or, when not root, says the exact command to run. Usage: system-packages.sh
set -euo pipefail
packages=(mosquitto mosquitto-clients gpsd gpsd-clients chromium openssl python3-venv
          victoria-metrics iproute2 nftables
          libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core poppler-utils
          zbar-tools espeak-ng)  # issue 13: the poster's QR code read back; the kiosk's voice
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "The tests need these system packages: ${missing[*]}" >&2
  echo "Run:  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  echo "then run make test again." >&2
  exit 1
fi
echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged daemons; the tests start their own on free ports.
