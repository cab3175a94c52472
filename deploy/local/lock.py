"""One ``up`` or ``down`` at a time per state folder, and no supervisor restart during either.

``lemma stack up`` and ``down`` wait for the lock; the supervisor only tries it before a
restart, and when it is held it waits for the next round (a stop in progress is never undone,
a start in progress starts what is missing itself).
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = "stack.lock"


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold the state folder's lock (waiting for whoever holds it)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def try_locked(state_dir: Path) -> Iterator[bool]:
    """Hold the lock if it is free; yields whether it was taken (never waits)."""
    try:
        lock = (state_dir / LOCK_FILE).open("a")
    except OSError:
        yield False
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
