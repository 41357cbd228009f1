#!/bin/sh
# Make a small certificate authority and a server certificate for the ground's broker.
#
#   make-certs.sh OUTDIR NAME [NAME...]
#
# NAME is the host name (or IP address) the buses use to reach the broker; give every name
# they may use: each becomes a subjectAltName (clients check the SAN, not the CN).
# Writes into OUTDIR:
#   ca.key  ca.crt          the authority: keep ca.key offline; copy ca.crt to every bus
#   server.key server.crt   for mosquitto's keyfile / certfile
# An existing ca.key/ca.crt in OUTDIR is reused, so running this again (new host name,
# renewal) does not force a new CA onto the whole fleet. Used by the installer and the tests.
set -eu

if [ "$#" -lt 2 ]; then
    echo "usage: $0 OUTDIR NAME [NAME...]" >&2
    exit 2
fi
out=$1
shift
cn=$1
CA_DAYS=${CA_DAYS:-3650}
SERVER_DAYS=${SERVER_DAYS:-825}

mkdir -p "$out"
umask 077

san=""
for name in "$@"; do
    case "$name" in
        *[!0-9.]*) case "$name" in
                       *:*) entry="IP:$name" ;;        # IPv6 address
                       *) entry="DNS:$name" ;;
                   esac ;;
        *) entry="IP:$name" ;;                          # IPv4 address
    esac
    san="${san:+$san,}$entry"
done

if [ ! -s "$out/ca.key" ] || [ ! -s "$out/ca.crt" ]; then
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$out/ca.key" -out "$out/ca.crt" -days "$CA_DAYS" -sha256 \
        -subj "/O=medicobus/CN=medicobus broker CA" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" 2>/dev/null
fi

ext=$(mktemp)
csr=$(mktemp)
trap 'rm -f "$ext" "$csr"' EXIT
cat >"$ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=$san
EOF

openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$out/server.key" -out "$csr" -subj "/O=medicobus/CN=$cn" 2>/dev/null
openssl x509 -req -in "$csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
    -out "$out/server.crt" -days "$SERVER_DAYS" -sha256 -extfile "$ext" 2>/dev/null
rm -f "$out/ca.srl"

chmod 644 "$out/ca.crt" "$out/server.crt"
chmod 600 "$out/ca.key" "$out/server.key"
echo "wrote $out/ca.crt $out/server.crt $out/server.key for $san"
