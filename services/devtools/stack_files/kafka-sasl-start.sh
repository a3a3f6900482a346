#!/bin/sh
# Start a single-node Apache Kafka 4.x (KRaft) with SASL/SCRAM sign-in and ACLs: the compose
# broker (docker-compose.yml mounts this file into apache/kafka and runs it). The same listeners
# and authorizer as the local stack's SASL option (services/platform/kafka_security.broker_properties):
#   CLIENTS     SASL_PLAINTEXT, SCRAM; every service signs in as its own user
#   CONTROLLER  SASL_PLAINTEXT, PLAIN with the admin's password (KRaft controllers cannot use SCRAM)
#   StandardAuthorizer, allow.everyone.if.no.acl.found=false, the admin the only super user.
# The admin's SCRAM credential is written when the storage is formatted (nobody could sign in to
# create it otherwise); `schoolhealth topics create` (the kafka-init service) then creates the
# services' users and their ACLs, signed in as the admin.
set -eu

: "${SCHOOLHEALTH_KAFKA_ADMIN_PASSWORD:?set SCHOOLHEALTH_KAFKA_ADMIN_PASSWORD (the Kafka admin password)}"
admin="${SCHOOLHEALTH_KAFKA_ADMIN_USER:-schoolhealth-admin}"
password="$SCHOOLHEALTH_KAFKA_ADMIN_PASSWORD"
mechanism="${SCHOOLHEALTH_KAFKA_SASL_MECHANISM:-SCRAM-SHA-512}"
mechanism_lower=$(printf '%s' "$mechanism" | tr 'A-Z' 'a-z')
advertised="${SCHOOLHEALTH_KAFKA_ADVERTISED_HOST:-kafka}"
bind="${SCHOOLHEALTH_KAFKA_BIND_HOST:-}"
port="${SCHOOLHEALTH_KAFKA_PORT:-9092}"
controller_port="${SCHOOLHEALTH_KAFKA_CONTROLLER_PORT:-9093}"
kafka_home="${KAFKA_HOME:-/opt/kafka}"
data="${SCHOOLHEALTH_KAFKA_DATA_DIR:-/var/lib/kafka/data}"
config="${SCHOOLHEALTH_KAFKA_CONFIG_DIR:-/tmp/schoolhealth-kafka}"

case "$password" in
  *[,\]\"=\ \\]*)
    echo "SCHOOLHEALTH_KAFKA_ADMIN_PASSWORD must not contain , ] \" = \\ or spaces (the storage tool's --add-scram syntax)" >&2
    exit 2 ;;
esac

umask 077
mkdir -p "$config"
cat > "$config/server.properties" <<EOF
process.roles=broker,controller
node.id=1
listeners=CLIENTS://${bind}:${port},CONTROLLER://${bind}:${controller_port}
advertised.listeners=CLIENTS://${advertised}:${port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENTS
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,CLIENTS:SASL_PLAINTEXT
controller.quorum.voters=1@${advertised}:${controller_port}
sasl.enabled.mechanisms=${mechanism}
sasl.mechanism.inter.broker.protocol=${mechanism}
listener.name.clients.${mechanism_lower}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${admin}" password="${password}";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="${admin}" password="${password}" user_${admin}="${password}";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:${admin}
log.dirs=${data}
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=10485760
EOF
# For the health check and an operator's kafka-*.sh commands inside the container.
cat > "$config/admin.properties" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=${mechanism}
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${admin}" password="${password}";
EOF

if [ ! -f "$data/meta.properties" ]; then
  cluster_id=$("$kafka_home/bin/kafka-storage.sh" random-uuid)
  "$kafka_home/bin/kafka-storage.sh" format -t "$cluster_id" -c "$config/server.properties" \
    --add-scram "${mechanism}=[name=${admin},password=${password}]"
fi
exec "$kafka_home/bin/kafka-server-start.sh" "$config/server.properties"
