"""The local stack `make run` starts: SeaweedFS (S3), Tansu on S3, the five services, Caddy."""
