#!/usr/bin/env bash
# Makes a demo CA and certificates for trying HTTPS and mutual TLS on one machine:
#   certs/make-demo-certs.sh DIR [HOSTNAME]
# DIR/ca.pem            the demo CA (trust it as [http] tls_client_ca and in clients)
# DIR/server.pem/.key   the node's HTTPS certificate for HOSTNAME (default localhost) and 127.0.0.1
# DIR/partner.pem/.key  a partner gateway's client certificate (TLS client authentication)
# DIR/rogue-ca.pem, DIR/rogue.pem/.key   a client certificate from another CA, for negative tests
# RSA 2048, SHA-256, valid 30 days. For production, load real anchors instead (see certs/README.md).
set -euo pipefail
dir=${1:?usage: make-demo-certs.sh DIR [HOSTNAME]}
host=${2:-localhost}
mkdir -p "$dir"
cd "$dir"
umask 077

ca() { # name subject
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.pem" -days 30 -sha256 -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
leaf() { # name ca subject extensions...
  local name=$1 issuer=$2 subj=$3; shift 3
  openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
  printf '%s\n' "$@" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" -CAcreateserial -days 30 -sha256 \
    -extfile "$name.ext" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

ca ca "/O=hienode demo/CN=hienode demo CA"
leaf server ca "/O=hienode demo/CN=$host" "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
  "extendedKeyUsage=serverAuth" "subjectAltName=DNS:$host,IP:127.0.0.1"
leaf partner ca "/O=Partner HIE/CN=partner-gateway" "basicConstraints=CA:FALSE" \
  "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=clientAuth"
ca rogue-ca "/O=Elsewhere/CN=rogue CA"
leaf rogue rogue-ca "/O=Elsewhere/CN=rogue-gateway" "basicConstraints=CA:FALSE" \
  "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth"
rm -f ./*.srl
chmod 644 ./*.pem
echo "demo certificates in $(pwd)"
