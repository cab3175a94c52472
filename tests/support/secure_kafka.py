"""An Apache Kafka node as production runs one: TLS on every client listener, SASL/SCRAM-SHA-512
users on one, client certificates (mTLS) on the other, and an authorizer; started the way the
tests start the plain one.

Its certificates are made here with ``cryptography`` (a CA; the broker's certificate for
127.0.0.1 in a PEM key store, which Kafka 4 reads; clients' certificates), its SCRAM users are
written at format time (``StorageTool format --add-scram``), and ACLs are created over the
Kafka protocol (CreateAcls) by its super user.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka.protocol.admin import CreateAclsRequest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from deploy.kafka_acls import KafkaAcl, principal
from deploy.local import broker
from deploy.local.processes import port_open, wait_until
from shared.kafka_connection import KafkaConnection
from tests.support.processes import free_ports, stop_process

SUPER_USER = "admin"
PEM = serialization.Encoding.PEM
#: Kafka's wire codes (org.apache.kafka.common.resource / acl)
RESOURCE_TYPES = {"TOPIC": 2, "GROUP": 3, "CLUSTER": 4, "TRANSACTIONAL_ID": 5}
PATTERN_TYPES = {"LITERAL": 3, "PREFIXED": 4}
OPERATIONS = {
    "READ": 3,
    "WRITE": 4,
    "CREATE": 5,
    "DELETE": 6,
    "ALTER": 7,
    "DESCRIBE": 8,
    "CLUSTER_ACTION": 9,
    "DESCRIBE_CONFIGS": 10,
    "ALTER_CONFIGS": 11,
    "IDEMPOTENT_WRITE": 12,
}
ALLOW = 3


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


class TestCA:
    """A certificate authority for one test: the broker's certificate and clients' (mTLS)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._key = ec.generate_private_key(ec.SECP256R1())
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        name = _name("lemma test CA")
        self._cert = (
            _builder(name, name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(usage, critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.file = folder / "ca.pem"
        self.file.write_bytes(self._cert.public_bytes(PEM))

    def issue(self, common_name: str, *, server: bool = False) -> tuple[Path, Path]:
        """A key and a certificate for ``common_name`` (a server's: for 127.0.0.1 and localhost),
        as PEM files ``<name>.key`` and ``<name>.crt`` (the chain, up to this CA)."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(_name(common_name), self._cert.subject, key.public_key())
        if server:
            names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        uses = [x509.OID_SERVER_AUTH, x509.OID_CLIENT_AUTH] if server else [x509.OID_CLIENT_AUTH]
        cert = builder.add_extension(x509.ExtendedKeyUsage(uses), critical=False).sign(
            self._key, hashes.SHA256()
        )
        key_file, cert_file = self.folder / f"{common_name}.key", self.folder / f"{common_name}.crt"
        key_file.write_bytes(
            key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        cert_file.write_bytes(cert.public_bytes(PEM) + self._cert.public_bytes(PEM))
        return key_file, cert_file

    def key_store(self, common_name: str) -> Path:
        """A server's PEM key store as Kafka reads it: the private key, then the chain."""
        key_file, cert_file = self.issue(common_name, server=True)
        store = self.folder / f"{common_name}.pem"
        store.write_bytes(key_file.read_bytes() + cert_file.read_bytes())
        return store


@dataclass(frozen=True)
class SecureBroker:
    """The node's two client listeners: SASL_SSL (a SCRAM user and password) and mTLS (a client
    certificate whose common name is the user)."""

    bootstrap: str
    mtls_bootstrap: str
    ca: TestCA
    passwords: Mapping[str, str]

    @property
    def ca_file(self) -> Path:
        return self.ca.file

    def connection(self, user: str, *, password: str | None = None) -> KafkaConnection:
        """How ``user`` reaches the broker with SASL_SSL, SCRAM-SHA-512 and the test CA."""
        return KafkaConnection(
            self.bootstrap,
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=user,
            sasl_password=SecretStr(self.passwords[user] if password is None else password),
            ssl_cafile=str(self.ca.file),
        )

    def mtls_connection(self, user: str) -> KafkaConnection:
        """How ``user`` reaches the broker with a client certificate (CN=``user``)."""
        key_file, cert_file = self.ca.issue(user)
        return KafkaConnection(
            self.mtls_bootstrap,
            security_protocol="SSL",
            ssl_cafile=str(self.ca.file),
            ssl_certfile=str(cert_file),
            ssl_keyfile=str(key_file),
        )


def secure_properties(
    ports: tuple[int, int, int], ca: TestCA, store: Path, admin_password: str
) -> dict[str, str]:
    """A node whose client listeners are SASL_SSL with SCRAM-SHA-512 and SSL with client
    certificates required (mTLS; the certificate's CN is the user), with an authorizer. The
    controller listener stays plaintext on 127.0.0.1 (the node's own quorum), so its principal,
    ANONYMOUS, is a super user: the broker in the node asks its controller over it."""
    sasl, mtls, controller = ports
    scram = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{SUPER_USER}" password="{admin_password}";'
    )
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{sasl},MTLS://127.0.0.1:{mtls},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{sasl},MTLS://127.0.0.1:{mtls}",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,MTLS:SSL,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
        "listener.name.mtls.ssl.client.auth": "required",
        "ssl.principal.mapping.rules": "RULE:^CN=([a-z0-9-]+)$/$1/,DEFAULT",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(store),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca.file),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{SUPER_USER};User:ANONYMOUS",
        "allow.everyone.if.no.acl.found": "false",
    }


@contextmanager
def secure_kafka_broker(home: Path, passwords: Mapping[str, str]) -> Iterator[SecureBroker]:
    """The node, on free ports with its storage in ``home``, with a SCRAM user per entry of
    ``passwords`` (``SUPER_USER`` among them); stopped on exit."""
    ca = TestCA(home / "tls")
    sasl, mtls, controller = free_ports(3)
    config = broker.BrokerConfig(home, sasl, controller, heap="256m", log_level="WARN")
    extra = secure_properties((sasl, mtls, controller), ca, ca.key_store("kafka"), passwords[SUPER_USER])
    users = [f"SCRAM-SHA-512=[name={user},password={password}]" for user, password in passwords.items()]
    argv = broker.prepare(config, extra, format_args=[arg for user in users for arg in ("--add-scram", user)])
    with (home / "kafka.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        alive = lambda: proc.poll() is None  # noqa: E731
        wait_until(
            lambda: port_open(sasl) and port_open(mtls), timeout=60, what="kafka listening", alive=alive
        )
        yield SecureBroker(f"127.0.0.1:{sasl}", f"127.0.0.1:{mtls}", ca, dict(passwords))
    finally:
        stop_process(proc, timeout=30)


async def create_acls(admin: KafkaConnection, user: str, acls: Iterable[KafkaAcl]) -> None:
    """Allow ``user`` what ``acls`` say (CreateAcls, as the super user); raises on any refusal."""
    client = admin.admin()
    await client.start()
    try:
        for acl in acls:
            request = CreateAclsRequest(
                resource_type=RESOURCE_TYPES[acl.resource_type],
                resource_name=acl.name,
                resource_pattern_type_filter=PATTERN_TYPES[acl.pattern],
                principal=principal(user),
                host="*",
                operation=OPERATIONS[acl.operation],
                permission_type=ALLOW,
            )
            answer = await client._send_request(request)
            for result in answer.creation_responses:
                if result[0] != 0:
                    raise RuntimeError(f"CreateAcls refused {acl} for {user}: {result}")
    finally:
        await client.close()
