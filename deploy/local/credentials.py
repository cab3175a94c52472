"""Local secrets, generated once into the state folder (mode 0600) and never kept in code."""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

JWT_SECRET_FILE = "jwt-secret"
S3_CREDENTIALS_FILE = "s3-credentials.json"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner may read (0600 from the start, no window)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)


def jwt_secret(state_dir: Path) -> str:
    """The local JWT signing secret: ``<state>/jwt-secret``, made on first use."""
    path = state_dir / JWT_SECRET_FILE
    if not path.exists():
        write_private(path, secrets.token_urlsafe(48) + "\n")
    return path.read_text().strip()


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str


def s3_credentials(state_dir: Path) -> S3Credentials:
    """The key pair of the stack's one S3 identity: ``<state>/s3-credentials.json``, made once."""
    path = state_dir / S3_CREDENTIALS_FILE
    if not path.exists():
        alphabet = string.ascii_uppercase + string.digits
        access = "LEMMA" + "".join(secrets.choice(alphabet) for _ in range(15))
        creds = {"access_key": access, "secret_key": secrets.token_urlsafe(30)}
        write_private(path, json.dumps(creds, indent=2) + "\n")
    data = json.loads(path.read_text())
    return S3Credentials(access_key=data["access_key"], secret_key=data["secret_key"])
