#!/usr/bin/env bash
# Make a private CA and one certificate + key signed by it, for TLS between the app, the Dask
# scheduler and the workers (compose.tls.yaml). Usage: scripts/tls_certs.sh [DIR] (default: certs).
# Writes DIR/ca.pem (give it to every process), DIR/featgeom.pem and DIR/featgeom-key.pem (one
# certificate for every role: Dask checks that the peer's certificate is signed by the CA, not its
# host name) and DIR/ca-key.pem (keep it off the servers; it signs more certificates).
set -euo pipefail
DIR="${1:-certs}"
DAYS="${FEATGEOM_TLS_DAYS:-825}"
mkdir -p "$DIR"
cd "$DIR"
umask 077
quietly() {  # openssl's progress dots are noise; its errors are not
  local log
  log="$("$@" 2>&1)" || { echo "$log" >&2; exit 1; }
}
quietly openssl req -x509 -newkey rsa:3072 -nodes -days "$DAYS" -subj "/CN=featgeom-ca" \
  -keyout ca-key.pem -out ca.pem
quietly openssl req -newkey rsa:3072 -nodes -subj "/CN=featgeom" -keyout featgeom-key.pem -out featgeom.csr
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:scheduler,DNS:localhost,IP:127.0.0.1\n' > featgeom.ext
quietly openssl x509 -req -in featgeom.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days "$DAYS" \
  -extfile featgeom.ext -out featgeom.pem
rm -f featgeom.csr featgeom.ext ca.srl
chmod 644 ca.pem featgeom.pem
echo "featgeom: wrote $DIR/ca.pem, $DIR/featgeom.pem, $DIR/featgeom-key.pem (and $DIR/ca-key.pem: keep it safe)"
