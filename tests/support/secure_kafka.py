"""An Apache Kafka node that only speaks SASL_SSL (SCRAM-SHA-512) to its clients, with an
authorizer: what production runs, started the way the tests start the plain one.

Its certificates are made here with ``cryptography`` (a CA, and the broker's certificate for
127.0.0.1, PEM; Kafka 4 reads PEM key stores), its SCRAM users are written at format time
(``StorageTool format --add-scram``), and ACLs are created over the Kafka protocol (CreateAcls)
by its super user.
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

from deploy.local import broker
from deploy.local.processes import port_open, wait_until
from shared.kafka_acls import KafkaAcl, principal
from shared.kafka_connection import KafkaConnection
from tests.support.processes import free_ports, stop_process

SUPER_USER = "admin"
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


def make_certificates(folder: Path) -> tuple[Path, Path]:
    """A CA (``ca.pem``) and the broker's key and certificate chain for 127.0.0.1 and localhost
    in one PEM key store (``broker.pem``); returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("lemma test CA"))
        .issuer_name(_name("lemma test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kafka"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH, x509.OID_CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(pem))
    store = folder / "broker.pem"
    store.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + cert.public_bytes(pem)
        + ca.public_bytes(pem)
    )
    return ca_file, store


@dataclass(frozen=True)
class SecureBroker:
    bootstrap: str
    ca_file: Path
    passwords: Mapping[str, str]

    def connection(self, user: str, *, password: str | None = None) -> KafkaConnection:
        """How ``user`` reaches the broker (SASL_SSL, SCRAM-SHA-512, the test CA)."""
        return KafkaConnection(
            self.bootstrap,
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=user,
            sasl_password=SecretStr(self.passwords[user] if password is None else password),
            ssl_cafile=str(self.ca_file),
        )


def secure_properties(
    port: int, controller: int, ca_file: Path, store: Path, admin_password: str
) -> dict[str, str]:
    """A node whose only client listener is SASL_SSL with SCRAM-SHA-512, and an authorizer. The
    controller listener stays plaintext on 127.0.0.1 (the node's own quorum), so its principal,
    ANONYMOUS, is a super user: the broker in the node asks its controller over it."""
    scram = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{SUPER_USER}" password="{admin_password}";'
    )
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{port}",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(store),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca_file),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{SUPER_USER};User:ANONYMOUS",
        "allow.everyone.if.no.acl.found": "false",
    }


@contextmanager
def secure_kafka_broker(home: Path, passwords: Mapping[str, str]) -> Iterator[SecureBroker]:
    """The node, on free ports with its storage in ``home``, with a SCRAM user per entry of
    ``passwords`` (``SUPER_USER`` among them); stopped on exit."""
    ca_file, store = make_certificates(home / "tls")
    port, controller = free_ports(2)
    config = broker.BrokerConfig(home, port, controller, heap="256m", log_level="WARN")
    extra = secure_properties(port, controller, ca_file, store, passwords[SUPER_USER])
    users = [f"SCRAM-SHA-512=[name={user},password={password}]" for user, password in passwords.items()]
    argv = broker.prepare(config, extra, format_args=[arg for user in users for arg in ("--add-scram", user)])
    with (home / "kafka.log").open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(
            lambda: port_open(port), timeout=60, what="kafka listening", alive=lambda: proc.poll() is None
        )
        yield SecureBroker(f"127.0.0.1:{port}", ca_file, dict(passwords))
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
