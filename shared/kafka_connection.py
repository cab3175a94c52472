"""How to reach the Kafka cluster: the bootstrap servers and the security that goes with them.

Every Kafka client of ours (aiokafka consumers, producers and admin clients, FastStream's
broker) is built from a ``KafkaConnection``, made from the settings (``KafkaConnection.of``), so
none connects without the TLS and SASL the settings ask for. ``KafkaConnection(bootstrap)``
alone is a plaintext connection (the local broker, benches, tests).

The SASL password is a ``SecretStr``: it shows as ``**********`` in a repr or a log line and is
read out only where a client is built.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import SecretStr

if TYPE_CHECKING:
    from shared.settings import Settings

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

_SECURITY: dict[SaslMechanism, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
    "SCRAM-SHA-512": SASLScram512,
    "SCRAM-SHA-256": SASLScram256,
    "PLAIN": SASLPlaintext,
}


@dataclass(frozen=True)
class KafkaConnection:
    """Bootstrap servers (comma separated) and how to talk to them."""

    bootstrap: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: SecretStr = field(default=SecretStr(""), repr=False)
    #: the CA that signed the brokers' certificates (empty: the system's CAs)
    ssl_cafile: str = ""
    #: a client certificate and its key (mTLS: the certificate's subject is the principal)
    ssl_certfile: str = ""
    ssl_keyfile: str = ""

    @classmethod
    def of(cls, settings: Settings) -> KafkaConnection:
        return cls(
            bootstrap=settings.kafka_bootstrap,
            security_protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=settings.kafka_sasl_password,
            ssl_cafile=settings.kafka_ssl_cafile,
            ssl_certfile=settings.kafka_ssl_certfile,
            ssl_keyfile=settings.kafka_ssl_keyfile,
        )

    @property
    def servers(self) -> list[str]:
        """The bootstrap servers one by one (FastStream takes one string as one host)."""
        return [host.strip() for host in self.bootstrap.split(",") if host.strip()]

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every client (None without TLS): the brokers' certificates are
        verified against the CA, host names checked."""
        if not self.uses_tls:
            return None
        context: ssl.SSLContext = create_ssl_context(
            cafile=self.ssl_cafile or None,
            certfile=self.ssl_certfile or None,
            keyfile=self.ssl_keyfile or None,
        )
        return context

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments every aiokafka client takes to connect."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.servers,
            "security_protocol": self.security_protocol,
        }
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context
        if self.uses_sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return options

    def broker_security(self) -> BaseSecurity | None:
        """The same for the ``security`` of FastStream's ``KafkaBroker``."""
        if self.uses_sasl:
            return _SECURITY[self.sasl_mechanism](
                self.sasl_username,
                self.sasl_password.get_secret_value(),
                ssl_context=self.ssl_context,
                use_ssl=self.uses_tls,
            )
        if self.uses_tls:
            return BaseSecurity(ssl_context=self.ssl_context, use_ssl=True)
        return None

    def consumer(self, *topics: str, **options: Any) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(*topics, **self.client_options(), **options)

    def producer(self, **options: Any) -> AIOKafkaProducer:
        return AIOKafkaProducer(**self.client_options(), **options)

    def admin(self, **options: Any) -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(**self.client_options(), **options)
