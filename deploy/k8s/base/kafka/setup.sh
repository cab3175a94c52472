#!/bin/bash
# As the cluster's admin: create (or update) the SCRAM user of every principal acls.txt names
# (its password from /etc/lemma/kafka-users/<user>/password, the Secret lemma-kafka-<user>),
# then add the ACLs of acls.txt (generated from deploy.kafka_acls by deploy/k8s/render.py).
# Safe to run again: passwords are set anew, ACLs already there are kept. An ACL removed from
# acls.txt is not removed from the cluster (kafka-acls.sh --remove). The paths can be changed
# through the environment (the Job uses the defaults).
set -euo pipefail
bootstrap="${KAFKA_BOOTSTRAP:-lemma-kafka-bootstrap:9092}"
bin="${KAFKA_BIN:-/opt/kafka/bin}"
acls="${KAFKA_ACLS:-/etc/lemma/kafka-setup/acls.txt}"
users_dir="${KAFKA_USERS_DIR:-/etc/lemma/kafka-users}"
config="${TMPDIR:-/tmp}/admin.properties"
cat > "$config" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${KAFKA_ADMIN_USER:-lemma-admin}" password="${KAFKA_ADMIN_PASSWORD}";
ssl.truststore.type=PEM
ssl.truststore.location=${KAFKA_CA_FILE:-/etc/lemma/ca/ca.crt}
PROPS
# the principals (User:<name>), each once
mapfile -t principals < <(grep -v -e '^#' -e '^[[:space:]]*$' "$acls" | cut -d' ' -f1 | sort -u)
for principal in "${principals[@]}"; do
    user="${principal#User:}"
    password="$(cat "${users_dir}/${user}/password")"
    "$bin/kafka-configs.sh" --bootstrap-server "$bootstrap" --command-config "$config" \
        --alter --entity-type users --entity-name "$user" \
        --add-config "SCRAM-SHA-512=[password=${password}]" < /dev/null
done
# principal resource-type pattern-type resource-name operations (comma separated)
while read -r principal rtype pattern name ops; do
    case "$principal" in '' | '#'*) continue ;; esac
    args=(--allow-principal "$principal" --allow-host '*' --resource-pattern-type "$pattern")
    args+=("--${rtype}" "$name")
    IFS=, read -ra operations <<< "$ops"
    for op in "${operations[@]}"; do args+=(--operation "$op"); done
    "$bin/kafka-acls.sh" --bootstrap-server "$bootstrap" --command-config "$config" --add --force "${args[@]}" < /dev/null
done < "$acls"
echo "users (${#principals[@]}) and ACLs set"
