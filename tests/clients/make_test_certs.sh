#!/bin/sh
# Test certificates for the security tests (node/tests/security.rs, tests/clients/security_check.py).
#
# Usage: make_test_certs.sh OUTDIR
#
# Writes into OUTDIR (created if missing), all PEM, EC P-256 keys (fast to make), valid 10 years:
#   ca.pem, ca.key            a test CA
#   server.pem, server.key    the broker's certificate, signed by the CA, for IP:127.0.0.1 and
#                             DNS:localhost (subject CN=localhost)
#   client.pem, client.key    a client certificate signed by the CA, subject O=test then
#                             CN=alice; Kafka names its principal by the RFC 2253 form of the
#                             subject, which lists the last RDN first: User:CN=alice,O=test
#   rogue.pem, rogue.key      a self-signed client certificate (CN=mallory) the CA did not sign
#
# Idempotent: when every file is already there it does nothing. Each openssl call is bounded
# by `timeout`. Exits non-zero (and says why) on any failure.
set -eu

if [ "$#" -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
out=$1
mkdir -p "$out"
cd "$out"

all="ca.pem ca.key server.pem server.key client.pem client.key rogue.pem rogue.key"
missing=0
for f in $all; do
    [ -s "$f" ] || missing=1
done
if [ "$missing" -eq 0 ]; then
    echo "certificates already in $out"
    exit 0
fi

ssl() {
    timeout 30 openssl "$@"
}

key() {
    ssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
    chmod 600 "$1"
}

days=3650

# The CA.
key ca.key
ssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/O=odradek-test/CN=odradek test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.pem

# sign NAME SUBJECT EXTFILE: NAME.key, NAME.pem signed by the CA with the extensions in EXTFILE.
sign() {
    key "$1.key"
    ssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
    ssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days "$days" \
        -extfile "$3" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr"
}

cat > server.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EOF
sign server "/CN=localhost" server.ext

cat > client.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EOF
sign client "/O=test/CN=alice" client.ext
rm -f server.ext client.ext ca.srl

# A client certificate no trusted CA signed.
key rogue.key
ssl req -x509 -new -key rogue.key -sha256 -days "$days" -subj "/O=test/CN=mallory" \
    -out rogue.pem

ssl verify -CAfile ca.pem server.pem client.pem >/dev/null
for f in $all; do
    [ -s "$f" ] || { echo "make_test_certs: $f was not written" >&2; exit 1; }
done
echo "certificates written to $out"
