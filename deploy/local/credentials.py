"""Local secrets, generated once into the state folder (mode 0600) and never kept in code."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

JWT_SECRET_FILE = "jwt-secret"


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
