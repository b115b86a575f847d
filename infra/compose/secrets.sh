#!/usr/bin/env bash
# Makes the compose stack's secrets once: a random password per Kafka principal and for Postgres, one file each
# under ./secrets (outside git; the directory is 0700). Existing files are kept, so running it again is harmless.
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/secrets"
mkdir -p "$DIR"
chmod 0700 "$DIR"
for name in kafka-controller kafka-broker kafka-admin kafka-worker kafka-sink kafka-share kafka-gateway \
    kafka-webhooks kafka-tools pg-password grafana-admin; do
    if [[ ! -s "$DIR/$name" ]]; then
        # alphanumeric: no quoting needed in JAAS lines or a DSN; readable by the containers' users
        (tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 || true) >"$DIR/$name"
        chmod 0644 "$DIR/$name"
        echo "made $DIR/$name"
    fi
done
# The keyring that seals webhook secrets at rest (connectors/webhooks/sealing.py): `<key id> <base64 of 32 bytes>`,
# the first line the current key. Rotate by putting a new line first, then `mmhub webhooks rotate-key`.
if [[ ! -s "$DIR/webhook-keys" ]]; then
    printf 'k%s %s\n' "$(date -u +%Y%m%d)" "$(head -c 32 /dev/urandom | base64)" >"$DIR/webhook-keys"
    chmod 0644 "$DIR/webhook-keys"
    echo "made $DIR/webhook-keys"
fi
