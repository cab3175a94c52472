#!/bin/bash
# Start one Kafka node of the StatefulSet: its configuration from the template, its storage
# formatted on the first start (with the setup Job's SCRAM user, which the cluster needs before
# any client can create the others), then the broker.
set -euo pipefail
node_id="${POD_NAME##*-}"
host="${POD_NAME}.lemma-kafka-brokers"
mkdir -p /var/run/kafka
# a PEM key store is the key (PKCS#8) followed by the certificate chain
cat /etc/kafka/tls/tls.key /etc/kafka/tls/tls.crt > /var/run/kafka/keystore.pem
sed -e "s/@NODE_ID@/${node_id}/" -e "s/@HOST@/${host}/" -e "s/@VOTERS@/${KAFKA_VOTERS}/" \
    -e "s/@REPLICATION@/${KAFKA_REPLICATION}/" -e "s/@MIN_ISR@/${KAFKA_MIN_ISR}/" \
    /etc/kafka/template/server.properties > /var/run/kafka/server.properties
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted \
    --cluster-id "${KAFKA_CLUSTER_ID}" --config /var/run/kafka/server.properties \
    --add-scram "SCRAM-SHA-512=[name=lemma-admin,password=${KAFKA_ADMIN_PASSWORD}]"
exec /opt/kafka/bin/kafka-server-start.sh /var/run/kafka/server.properties
