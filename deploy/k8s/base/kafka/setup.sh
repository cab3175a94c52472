#!/bin/bash
# Create (or update) the SCRAM user of every service and add its ACLs (acls.txt), as the
# cluster's admin. Safe to run again: passwords are set anew, ACLs already there are kept.
# An ACL removed from acls.txt is not removed from the cluster (kafka-acls.sh --remove).
set -euo pipefail
bootstrap="${KAFKA_BOOTSTRAP:-lemma-kafka-bootstrap:9092}"
config=/tmp/admin.properties
cat > "$config" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="lemma-admin" password="${KAFKA_ADMIN_PASSWORD}";
ssl.truststore.type=PEM
ssl.truststore.location=/etc/lemma/ca/ca.crt
PROPS
for service in passport matching sessions evidence sci; do
    password="$(cat "/etc/lemma/kafka-users/${service}/password")"
    /opt/kafka/bin/kafka-configs.sh --bootstrap-server "$bootstrap" --command-config "$config" \
        --alter --entity-type users --entity-name "lemma-${service}" \
        --add-config "SCRAM-SHA-512=[password=${password}]"
done
while read -r principal rtype pattern name ops; do
    case "$principal" in '' | '#'*) continue ;; esac
    args=(--allow-principal "User:${principal}" --resource-pattern-type "$pattern" "--${rtype}" "$name")
    IFS=, read -ra operations <<< "$ops"
    for op in "${operations[@]}"; do args+=(--operation "$op"); done
    /opt/kafka/bin/kafka-acls.sh --bootstrap-server "$bootstrap" --command-config "$config" --add "${args[@]}"
done < /etc/lemma/kafka-setup/acls.txt
echo "users and ACLs set"
