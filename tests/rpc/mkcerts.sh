#!/bin/sh
# Makes a throw-away PKI for the security tests in DIR (docs/security.md shows
# the same steps): a test CA, a server certificate for 127.0.0.1 / ::1 /
# localhost, a client certificate (CN=test-client) signed by the CA, and a
# second, untrusted CA with a server certificate of its own. EC P-256 keys:
# quick to make. Usage: sh tests/rpc/mkcerts.sh DIR
set -eu
d=$1
mkdir -p "$d"
cd "$d"
ossl() { openssl "$@" 2>/dev/null; }
key() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

ca() { # name
  key "$1.key"
  ossl req -x509 -new -key "$1.key" -sha256 -days 2 -subj "/CN=Strata test $1" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -out "$1.pem"
}
leaf() { # name ca subject ext
  key "$1.key"
  ossl req -new -key "$1.key" -subj "$3" -out "$1.csr"
  printf '%s\n' "$4" > "$1.ext"
  ossl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 2 -sha256 \
    -extfile "$1.ext" -out "$1.pem"
  rm -f "$1.csr" "$1.ext"
}
ca ca
ca other-ca
SAN="subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
extendedKeyUsage=serverAuth"
leaf server ca "/CN=strata-server" "$SAN"
leaf other-server other-ca "/CN=strata-server" "$SAN"
leaf client ca "/O=Strata tests/CN=test-client" "extendedKeyUsage=clientAuth"
leaf other-client other-ca "/CN=intruder" "extendedKeyUsage=clientAuth"
