"""The faults of the faults run, as an operator or a chaos tool would cause them.

Victims are picked from what ``lemma stack status --json`` lists (the processes, their pids, roles and
readiness) and killed with SIGKILL: no clean stop, no chance to finish a batch or relay the
outbox. The stack's supervisor restarts them, as Kubernetes would. A replica is killed only
while every other replica of its service is ready (a PodDisruptionBudget's rule), so the
gateway always has one to send to; a broker is killed and comes back the same way.

The local stack keeps its documents in SQLite files (no store process to restart); against
MongoDB a run would also restart the store's process: that is not done here.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.local import processes
from deploy.local.config import StackConfig
from deploy.local.plan import process_plan
from deploy.local.status import probe, status_json
from deploy.local.status import stack_status as status_rows

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
    """Every process of the stack, as ``lemma stack status --json`` lists them (the same
    function, called in process: a CLI's start-up is seconds on a saturated machine)."""
    config = StackConfig.load(state_dir)
    if config is None:
        raise RuntimeError(f"no stack in {state_dir}")
    processes: list[dict[str, Any]] = status_json(config, status_rows(config))["processes"]
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

    def _back(self, kill: Kill) -> bool:
        """Whether ``kill``'s process runs again (another pid) and answers as ready: probed
        alone, in process (``lemma stack status`` probes every process)."""
        config = StackConfig.load(self.state_dir)
        spec = next((s for s in process_plan(config) if s.name == kill.name), None) if config else None
        if config is None or spec is None:
            return False
        handle = processes.running(config.run_dir, kill.name)
        return handle is not None and handle.pid != kill.pid and probe(config, spec)

    async def _until_back(self, kill: Kill) -> None:
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < BACK_WITHIN_S:
            await asyncio.sleep(0.5)
            if await asyncio.to_thread(self._back, kill):
                kill.back_after = round(time.monotonic() - killed_at, 1)
                return

    async def all_back(self) -> bool:
        """Wait for every killed process to be ready again; whether each was."""
        await asyncio.gather(*self._watches)
        return all(k.back_after is not None for k in self.kills)
