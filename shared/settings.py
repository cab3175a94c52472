"""One settings class for every service, read from the environment (prefix ``LEMMA_``).

In production it refuses what only suits development, in the manner of the FastAPI full-stack
template: HS256 tokens signed with a shared secret (the identity provider's RS256 keys are
required) and request limits counted apart in each replica.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.events.registry import Topic

DEV_SECRET = "lemma-development-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEMMA_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    service: str = "lemma"
    # Which replica of a service this is ("1", "2", ...): unique among the service's replicas.
    # Its consumers join their groups as static members named after it (``group_instance_id``),
    # so a replica restarted within the session timeout gets its partitions back without a
    # rebalance, and its outbox claims and partition ownership carry it.
    instance: str = Field(default="1", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    state_dir: str = "var"

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    # Put before every topic and consumer group name, so several deployments (or tests) can
    # share one cluster: "staging." gives staging.lemma.passport.v1. Empty in production.
    kafka_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]{0,80}$")
    # How clients reach the brokers: PLAINTEXT (the local broker), SSL (TLS; with a client
    # certificate, mTLS: its subject is the principal), SASL_SSL (TLS, and a user and password,
    # SCRAM by default), SASL_PLAINTEXT (a user and password in the clear: behind a mesh that
    # encrypts). Production refuses the plaintext ones unless LEMMA_KAFKA_ALLOW_PLAINTEXT.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")  # never shown: repr and logs give **********
    kafka_ssl_cafile: str = ""  # the CA of the brokers' certificates (empty: the system's CAs)
    kafka_ssl_certfile: str = ""  # PEM client certificate (mTLS), with its key:
    kafka_ssl_keyfile: str = ""
    # Production: allow PLAINTEXT and SASL_PLAINTEXT (only where something else encrypts the
    # traffic and, with PLAINTEXT, tells the services apart: a service mesh's mTLS).
    kafka_allow_plaintext: bool = False
    kafka_acks: Literal["all", "1", "0"] = "all"
    kafka_idempotence: bool = True  # no duplicates or reordering when a producer retries
    # How `lemma topics create` makes the topics: 1 and 1 on one local broker, 3 and 2 in
    # production (a write is acknowledged by two replicas; one broker may be down).
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_min_insync_replicas: int = Field(default=1, ge=1)
    # Partitions of each domain topic `lemma topics create` makes (the dead-letter and ops
    # topics have one). They bound how many replicas of a service fold at once; the services
    # read the count a topic really has from the cluster, so a topic made otherwise still works.
    kafka_partitions: int = Field(default=3, ge=1, le=1000)
    consumer_max_records: int = 2000
    # How many processes a rebuild (``lemma replay``) folds with, where its projection allows
    # partitions to be folded apart; 0: up to twice the machine's cores, once 200,000 records
    # or more are left to fold (``shared.rebuild.APART_FROM``); 1: one process.
    rebuild_workers: int = Field(default=0, ge=0)
    # Events a rebuild in catch-up mode folds in memory before one store write (with their offsets).
    rebuild_window: int = Field(default=50_000, ge=1)
    # How often clients refresh the cluster's metadata even when nothing failed: a topic
    # recreated under a running service is seen (and its new log checked) within this time.
    kafka_metadata_max_age_ms: int = Field(default=30_000, ge=1000)
    # A consumer that vanishes without leaving its group (SIGKILL, a lost host) holds its
    # partitions this long; Kafka's own default. Heartbeats go every 3 s (a third of it if shorter).
    consumer_session_timeout_ms: int = Field(default=45_000, ge=1000)
    # Join consumer groups as static members (``group_instance_id`` = group + instance): a
    # restarted replica gets its partitions back without a rebalance. A static member does not
    # leave its group when it stops: its partitions wait for it up to the session timeout (a
    # rolling deploy that brings it back loses no time to rebalances). Off: dynamic members
    # that leave at once when they stop (replicas without a stable name).
    consumer_static_membership: bool = True
    # A fold that fails for a reason other than its data (the store, a bug) stops its partition
    # at that record and tries again after a doubling backoff (first delay, capped); after this
    # many tries at the same record the partition is parked until resumed (``/ops``).
    fold_retry_tries: int = Field(default=5, ge=1)
    fold_retry_first_delay_s: float = Field(default=1.0, gt=0)
    fold_retry_max_delay_s: float = Field(default=30.0, gt=0)

    # How long a request carrying a consistency token (the Lemma-After header) waits for the
    # service to see the write it names before answering anyway, marked possibly stale.
    consistency_wait_s: float = Field(default=5.0, ge=0, le=60)

    # How long a participant has to dispute the partner's completion of a session, or to contest
    # being named a no-show; past it, the sessions service's sweep confirms the session or upholds
    # the claim. A new window applies to sessions completed or abandoned after the change.
    session_confirm_window_s: float = Field(default=48 * 3600, gt=0)

    # How often the sci service checks whether a skill's rater calibration is due (0: never).
    sci_calibration_interval_s: float = 10.0
    # A skill is calibrated once it has this many ratings (below, bias and noise are not
    # identifiable and the estimates degenerate).
    sci_calibration_min_ratings: int = 100
    # How often each sci replica works out the SCI distribution it exports
    # (``lemma_sci_learners``) from the whole store (0: never).
    sci_distribution_interval_s: float = Field(default=30.0, ge=0)

    # The store of each service: a URL with a ``{service}`` placeholder, so services never
    # share a database (e.g. ``mongodb://db:27017/lemma_{service}?replicaSet=rs0``).
    # Empty: one SQLite file per service under ``<state_dir>/data/``.
    store_url: str = ""

    # Auth. Development (and tests) sign HS256 tokens with the secret; production verifies the
    # identity provider's RS256 tokens against its keys (JWKS) and refuses HS256 altogether.
    jwt_secret: str = DEV_SECRET
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_jwks_url: str = ""
    # Every token must name this issuer (``iss``) and this audience (``aud``): a token the
    # identity provider issued for another application is refused.
    jwt_issuer: str = "lemma"
    jwt_audience: str = "lemma-api"
    # Where an RS256 token carries the caller's roles: a claim name, dotted for a nested claim
    # (``realm_access.roles``); a string or a list of strings. Holding ``jwt_ops_role`` there
    # makes the caller an operator. HS256 tokens (minted here) carry ``role``.
    jwt_role_claim: str = Field(default="role", pattern=r"^[A-Za-z0-9_:/.-]{1,200}$")
    jwt_ops_role: str = Field(default="ops", min_length=1)
    jwt_ttl_s: int = 24 * 3600

    # Request limits (``limits`` notation, e.g. "600/minute"; empty: no limit). Per token: every
    # route that checks a token counts against its subject. Per IP: every request but the
    # probes and the scrape counts against the client's address (the proxy's X-Forwarded-For
    # when it comes from ``trusted_proxies``).
    rate_limit_per_token: str = "1200/minute"
    rate_limit_per_ip: str = "12000/minute"
    # Where the counts are kept (a ``limits`` storage URI): ``memory://`` counts in each process,
    # so N replicas allow N times the limit; production shares one Redis (``redis://host:6379``)
    # so replicas count together.
    rate_limit_storage: str = "memory://"
    # Concurrent long-polls (``GET /v1/match-requests/{id}?wait=``) one caller may hold open on
    # one process; one more is answered 429.
    max_waits_per_caller: int = Field(default=4, ge=1)
    # Addresses whose X-Forwarded-For names the client (the gateway), comma separated; "*": any.
    trusted_proxies: str = "127.0.0.1"
    # Origins of browser clients allowed to call the API across origins (CORS); none by default.
    cors_origins: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.store_url and "{service}" not in self.store_url:
            raise ValueError(
                "LEMMA_STORE_URL must contain {service} (each service owns its own database), "
                "e.g. mongodb://db:27017/lemma_{service}?replicaSet=rs0"
            )
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError(
                "LEMMA_KAFKA_MIN_INSYNC_REPLICAS cannot exceed LEMMA_KAFKA_REPLICATION_FACTOR "
                "(no write could ever be acknowledged)"
            )
        if self.jwt_algorithm == "RS256" and not self.jwt_jwks_url:
            raise ValueError("LEMMA_JWT_JWKS_URL is required with LEMMA_JWT_ALGORITHM=RS256")
        if self.environment == "production" and self.jwt_algorithm == "HS256":
            raise ValueError(
                "LEMMA_JWT_ALGORITHM must be RS256 in production: tokens come from the identity "
                "provider (LEMMA_JWT_JWKS_URL); HS256 tokens are minted only in development"
            )
        if self.environment == "production" and self.rate_limit_storage.startswith("memory"):
            raise ValueError(
                "LEMMA_RATE_LIMIT_STORAGE must be shared in production (redis://...): "
                "memory:// counts in each replica, so N replicas would allow N times the limit"
            )
        self._check_kafka_security()
        return self

    def _check_kafka_security(self) -> None:
        protocol = self.kafka_security_protocol
        if protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"LEMMA_KAFKA_SECURITY_PROTOCOL={protocol} needs LEMMA_KAFKA_SASL_USERNAME and "
                "LEMMA_KAFKA_SASL_PASSWORD (the service's Kafka user)"
            )
        if bool(self.kafka_ssl_certfile) != bool(self.kafka_ssl_keyfile):
            raise ValueError(
                "LEMMA_KAFKA_SSL_CERTFILE and LEMMA_KAFKA_SSL_KEYFILE go together (a client "
                "certificate and its private key)"
            )
        if self.environment != "production":
            return
        if protocol in ("PLAINTEXT", "SASL_PLAINTEXT") and not self.kafka_allow_plaintext:
            raise ValueError(
                f"LEMMA_KAFKA_SECURITY_PROTOCOL={protocol} sends the events in the clear: production "
                "needs SASL_SSL or SSL with a client certificate (or LEMMA_KAFKA_ALLOW_PLAINTEXT=true "
                "where a service mesh encrypts the traffic)"
            )
        if protocol == "SSL" and not self.kafka_ssl_certfile:
            raise ValueError(
                "LEMMA_KAFKA_SECURITY_PROTOCOL=SSL without a client certificate leaves the service "
                "anonymous to Kafka (no ACL can tell it apart): set LEMMA_KAFKA_SSL_CERTFILE and "
                "LEMMA_KAFKA_SSL_KEYFILE (mTLS), or use SASL_SSL"
            )

    def topic(self, topic: Topic) -> str:
        """The name of ``topic`` on the cluster (with the prefix)."""
        return self.kafka_prefix + topic.value

    def group(self, name: str) -> str:
        """The name of consumer group ``name`` on the cluster (with the prefix)."""
        return self.kafka_prefix + name

    def store_url_for(self, service: str) -> str:
        """The store URL of one service: each service owns its own database."""
        if self.store_url:
            return self.store_url.replace("{service}", service)
        return f"sqlite:///{self.state_dir}/data/{service}.db"


@lru_cache
def get_settings() -> Settings:
    return Settings()
