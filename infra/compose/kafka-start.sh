#!/bin/sh
# The compose stack's broker (apache/kafka image), with the settings of infra/kafka/server.properties.in as in
# infra/dev.sh: SASL/SCRAM for clients, SASL/PLAIN for the controller listener, ACLs deny what none allows.
# On first start it formats the storage with one SCRAM user per hub principal; passwords come from the compose
# secrets in /run/secrets (infra/compose/secrets.sh makes them), never from this file or the compose file.
set -eu
SECRETS=/run/secrets
DATA=/var/lib/kafka/data
PROPS=/tmp/server.properties
PRINCIPALS="admin worker sink share gateway webhooks tools"  # hubconf.settings.PRINCIPALS
pw() { cat "$SECRETS/kafka-$1"; }

umask 077
sed -e "s|@CONTROLLER_ADDRESS@|kafka:9093|" -e "s|@CONTROLLER_BIND@|:9093|" -e "s|@CLIENT_BIND@|:9092|" \
    -e "s|@CLIENT_ADDRESS@|kafka:9092|" -e "s|@BROKER_PASSWORD@|$(pw broker)|" \
    -e "s|@CONTROLLER_PASSWORD@|$(pw controller)|g" -e "s|@DATA@|$DATA|" /opt/mmhub/server.properties.in >"$PROPS"
# for the healthcheck
cat >/tmp/admin.properties <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-256
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(pw admin)";
PROPS

if [ ! -f "$DATA/meta.properties" ]; then
    set --
    for p in broker $PRINCIPALS; do
        set -- "$@" --add-scram "SCRAM-SHA-256=[name=$p,password=$(pw "$p")]"
    done
    /opt/kafka/bin/kafka-storage.sh format -t "$(/opt/kafka/bin/kafka-storage.sh random-uuid)" -c "$PROPS" "$@"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$PROPS"
