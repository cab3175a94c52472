"""The matching processes under test (``python -m services.matching``): replicas sharing one
SQLite store, and what that store holds, read straight from the file while they run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import ops_token_for_processes, start_matching_process

INSTANCES = ("a", "b")


@dataclass
class Matcher:
    instance: str
    proc: subprocess.Popen[bytes]
    base: str
    db: Path


def start_matcher(instance: str, bootstrap: str, state: Path, ttl_s: float, store: Path) -> Matcher:
    """A matching replica with its own state directory (its log) on the store in ``store``
    (default expansions and recent-partner rule); a stopped replica's partitions move within 6 s."""
    store.mkdir(parents=True, exist_ok=True)
    proc, url = start_matching_process(
        instance,
        bootstrap,
        state,
        LEMMA_STORE_URL=f"sqlite:///{store}/{{service}}.db",
        LEMMA_MATCHING_TTL_S=str(ttl_s),
        LEMMA_MATCHING_SWEEP_INTERVAL_S="0.5",
        LEMMA_CONSUMER_SESSION_TIMEOUT_MS="6000",
    )
    return Matcher(instance, proc, url, store / "matching.db")


def store_docs(db: Path, collection: str) -> dict[str, dict[str, Any]]:
    if not db.exists():
        return {}
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as con:
        rows = con.execute("SELECT key, doc FROM docs WHERE collection=?", (collection,)).fetchall()
    return {key: json.loads(doc) for key, doc in rows}


def store_count(db: Path, collection: str) -> int:
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as con:
        try:
            return int(
                con.execute("SELECT count(*) FROM docs WHERE collection=?", (collection,)).fetchone()[0]
            )
        except sqlite3.OperationalError:
            return 0  # the schema is not made yet


def still_open(db: Path, ended: set[str]) -> list[str]:
    """Matches the store holds as not ended although the sessions log ended them."""
    return sorted(k for k, d in store_docs(db, "matches").items() if k in ended and not d["ended"])


def busy_on(db: Path, matches: Sequence[str]) -> int:
    """Learners (per skill) whose latest match in the store is one of ``matches``: the HTTP route
    refuses their requests there (409, "in a session ... which has not ended")."""
    stale = set(matches)
    return sum(d["match_id"] in stale for d in store_docs(db, "busy").values())


async def until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(interval)


async def wait_for_matchers(matchers: Sequence[Matcher], skills: Sequence[str]) -> dict[str, list[str]]:
    """Both processes ready and, between them, deciding for every skill (each skill once)."""
    owned: dict[str, list[str]] = {}
    async with httpx.AsyncClient(timeout=10) as client:

        async def settled() -> bool:
            for m in matchers:
                if m.proc.poll() is not None:
                    raise RuntimeError(f"matching {m.instance} exited ({m.proc.returncode}); see its log")
                try:
                    if (await client.get(f"{m.base}/readyz")).status_code != 200:
                        return False
                    path = f"{m.base}/v1/matching/ownership"
                    owned[m.instance] = (await client.get(path, headers=ops_token_for_processes())).json()[
                        "skills"
                    ]
                except httpx.TransportError:
                    return False
            every = [s for m in matchers for s in owned[m.instance]]
            return sorted(every) == sorted(skills)

        await until(settled, 120, "matching processes ready and owning every skill once")
    return owned


async def worst_loop_lag(matcher: Matcher) -> float | None:
    """The process's ``lemma_event_loop_lag_max_seconds``: how long its event loop was ever held
    (a decision, a fold or a sweep waits that long); None if it does not answer."""
    try:
        async with httpx.AsyncClient(base_url=matcher.base, timeout=10) as client:
            text = (await client.get("/metrics")).text
    except httpx.TransportError:
        return None
    for line in text.splitlines():
        if line.startswith("lemma_event_loop_lag_max_seconds{"):
            return float(line.rsplit(" ", 1)[1])
    return None
