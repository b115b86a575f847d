#!/bin/sh
# The compose stack's broker (apache/kafka image): clients authenticate with SASL/SCRAM-SHA-256, the controller
# listener with SASL/PLAIN (one static user, the node itself), and ACLs deny what none allows, as in infra/dev.sh.
# On first start it formats the storage with one SCRAM user per hub principal; passwords come from the compose
# secrets in /run/secrets (infra/compose/secrets.sh makes them), never from this file or the compose file.
set -eu
SECRETS=/run/secrets
DATA=/var/lib/kafka/data
PROPS=/tmp/server.properties
PRINCIPALS="admin worker sink share gateway webhooks tools"  # mmhub.config.PRINCIPALS
pw() { cat "$SECRETS/kafka-$1"; }

umask 077
cat >"$PROPS" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@kafka:9093
listeners=CLIENT://:9092,CONTROLLER://:9093
advertised.listeners=CLIENT://kafka:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-256
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256
listener.name.client.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="$(pw broker)";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$(pw controller)" user_controller="$(pw controller)";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:controller;User:broker;User:admin
log.dirs=$DATA
num.partitions=8
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
PROPS
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
