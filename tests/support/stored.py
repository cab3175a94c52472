"""What a SQLite store holds, read straight from its file: for tests that must show some text is
in no document of it (erasure)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def stored_text(db: Path) -> str:
    """Every collection, key and document of the store at ``db``, one per line."""
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT collection, key, doc FROM docs").fetchall()
    return "\n".join(f"{c}\t{k}\t{d}" for c, k, d in rows)
