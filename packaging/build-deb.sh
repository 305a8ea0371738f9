#!/usr/bin/env bash
# Builds the odradek .deb with dpkg-deb (Debian's own packager):
#   bash packaging/build-deb.sh [OUT_DIR]
# BIN (default target/release/odradek; built with `cargo build --release -p odradek-node`
# when it is missing) is installed as /usr/bin/odradek, stripped of debug info. Prints the
# path of the package. The package holds:
#   /usr/bin/odradek                         the node, the Kafka CLI, `tune`
#   /lib/systemd/system/odradek.service      the unit (not enabled: `systemctl enable --now odradek`)
#   /etc/odradek/odradek.toml                the config (a conffile: upgrades keep local edits)
#   /usr/share/doc/odradek/                  README, CONFIGURATION.md, the Grafana dashboard,
#                                            a Prometheus scrape config
# and a postinst that creates the system user `odradek` and /var/lib/odradek.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/debian}
BIN=${BIN:-target/release/odradek}
if [ ! -x "$BIN" ]; then
    cargo build --release --locked -p odradek-node
fi
VERSION=${VERSION:-$(awk -F'"' '/^version *=/ { print $2; exit }' Cargo.toml)}
ARCH=${ARCH:-$(dpkg --print-architecture)}
ROOT=$(mktemp -d)
chmod 0755 "$ROOT"
trap 'rm -rf "$ROOT"' EXIT

install -D -m 0755 "$BIN" "$ROOT/usr/bin/odradek"
# Debug info is most of a release binary's size; the symbol table stays for backtraces.
objcopy --strip-debug "$ROOT/usr/bin/odradek" 2>/dev/null || strip --strip-debug "$ROOT/usr/bin/odradek"
install -D -m 0644 packaging/odradek.service "$ROOT/lib/systemd/system/odradek.service"
install -D -m 0644 packaging/odradek.toml "$ROOT/etc/odradek/odradek.toml"
DOC="$ROOT/usr/share/doc/odradek"
install -D -m 0644 README.md "$DOC/README.md"
[ -f docs/CONFIGURATION.md ] && install -D -m 0644 docs/CONFIGURATION.md "$DOC/CONFIGURATION.md"
install -D -m 0644 ops/grafana-dashboard.json "$DOC/grafana-dashboard.json"
install -D -m 0644 ops/prometheus.yml "$DOC/prometheus.yml"

mkdir -p "$ROOT/DEBIAN"
SIZE_KB=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
cat > "$ROOT/DEBIAN/control" <<CONTROL
Package: odradek
Version: $VERSION
Architecture: $ARCH
Maintainer: Odradek developers <odradek@example.invalid>
Installed-Size: $SIZE_KB
Depends: libc6, passwd
Section: net
Priority: optional
Homepage: https://example.invalid/odradek
Description: Kafka-compatible streaming broker, thread-per-core on io_uring
 Odradek speaks the Kafka protocol to unmodified clients (librdkafka, the Java
 client, kafka-python, confluent-kafka). One binary is the node, a Kafka
 command line (topics, produce, consume, groups) and a host tuner.
CONTROL
echo /etc/odradek/odradek.toml > "$ROOT/DEBIAN/conffiles"
cat > "$ROOT/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd odradek >/dev/null; then
        useradd --system --user-group --home-dir /var/lib/odradek --no-create-home \
            --shell /usr/sbin/nologin --comment "Odradek broker" odradek
    fi
    install -d -o odradek -g odradek -m 0750 /var/lib/odradek
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || true
    fi
fi
exit 0
POSTINST
cat > "$ROOT/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop odradek.service >/dev/null 2>&1 || true
fi
exit 0
PRERM
cat > "$ROOT/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
# The data directory and the user stay: a broker's data is never removed by a package tool.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
POSTRM
chmod 0755 "$ROOT/DEBIAN/postinst" "$ROOT/DEBIAN/prerm" "$ROOT/DEBIAN/postrm"

mkdir -p "$OUT"
DEB="$OUT/odradek_${VERSION}_${ARCH}.deb"
# COMPRESS=gzip (with LEVEL=1) makes a quick package for tests; releases keep xz.
dpkg-deb --root-owner-group -Z"${COMPRESS:-xz}" ${LEVEL:+-z"$LEVEL"} --build "$ROOT" "$DEB" >/dev/null
echo "$DEB"
