"""The local stack `make run` starts: Apache Kafka (one KRaft node), the five services, Caddy."""
