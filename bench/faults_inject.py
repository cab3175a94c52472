"""The faults of the faults run, as an operator or a chaos tool would cause them.

Victims are picked from ``lemma stack status --json`` (the processes, their pids, roles and
readiness) and killed with SIGKILL: no clean stop, no chance to finish a batch or relay the
outbox. The stack's supervisor restarts them, as Kubernetes would. A replica is killed only
while every other replica of its service is ready (a PodDisruptionBudget's rule), so the
gateway always has one to send to; a broker is killed and comes back the same way.

The local stack keeps its documents in SQLite files (no store process to restart); against
MongoDB a run would also restart the store's process: that is not done here.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: How long a killed process may take to be ready again before the run says so.
BACK_WITHIN_S = 90.0


@dataclass
class Kill:
    name: str
    role: str
    pid: int
    at: float  # seconds since the run started
    back_after: float | None = None  # seconds until ready again (None: not seen back)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "at": self.at, "back_after": self.back_after}


def stack_status(state_dir: Path) -> list[dict[str, Any]]:
    """Every process of the stack, as ``lemma stack status --json`` lists them."""
    lemma = Path(sys.executable).with_name("lemma")
    out = subprocess.run(
        [str(lemma), "stack", "status", "--json", "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if not out.stdout.strip():
        raise RuntimeError(f"lemma stack status gave nothing: {out.stderr[-500:]}")
    processes: list[dict[str, Any]] = json.loads(out.stdout)["processes"]
    return processes


def pick_replica(processes: list[dict[str, Any]], rng: random.Random) -> dict[str, Any] | None:
    """A ready service replica whose every sibling is ready too (None if there is none)."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    for p in processes:
        if p["role"] == "service":
            by_service.setdefault(p["service"], []).append(p)
    candidates = [
        p
        for replicas in by_service.values()
        if len(replicas) > 1 and all(r["ready"] and r["pid"] for r in replicas)
        for p in replicas
    ]
    return rng.choice(candidates) if candidates else None


def pick_broker(processes: list[dict[str, Any]], rng: random.Random) -> dict[str, Any] | None:
    brokers = [p for p in processes if p["role"] == "broker"]
    if not brokers or not all(b["ready"] and b["pid"] for b in brokers):
        return None
    return rng.choice(brokers)


class Injector:
    def __init__(self, state_dir: Path, rng: random.Random, started: float) -> None:
        self.state_dir = state_dir
        self.rng = rng
        self.started = started
        self.kills: list[Kill] = []
        self._watches: list[asyncio.Task[None]] = []

    async def status(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(stack_status, self.state_dir)

    def _kill(self, victim: dict[str, Any]) -> Kill:
        os.kill(int(victim["pid"]), signal.SIGKILL)
        kill = Kill(
            victim["name"], victim["role"], int(victim["pid"]), round(time.monotonic() - self.started, 2)
        )
        self.kills.append(kill)
        self._watches.append(asyncio.create_task(self._until_back(kill)))
        return kill

    async def kill_replica(self) -> Kill | None:
        victim = pick_replica(await self.status(), self.rng)
        return self._kill(victim) if victim else None

    async def kill_broker(self) -> Kill | None:
        victim = pick_broker(await self.status(), self.rng)
        return self._kill(victim) if victim else None

    async def _until_back(self, kill: Kill) -> None:
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < BACK_WITHIN_S:
            await asyncio.sleep(0.5)
            row = next((p for p in await self.status() if p["name"] == kill.name), None)
            if row and row["ready"] and row["pid"] and int(row["pid"]) != kill.pid:
                kill.back_after = round(time.monotonic() - killed_at, 1)
                return

    async def all_back(self) -> bool:
        """Wait for every killed process to be ready again; whether each was."""
        await asyncio.gather(*self._watches)
        return all(k.back_after is not None for k in self.kills)
