"""The supervisor's bookkeeping, apart from its I/O: when to restart a process, and the state
file ``<state>/run/supervisor.json`` that ``lemma stack status`` reads.

Like Kubernetes' restart policy: a process that exits is started again after a back-off that
doubles with every exit in a row (0.5 s, 1 s, 2 s ... 30 s at most) and starts over once the
process has stayed up ``RESET_AFTER`` seconds.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FIRST_DELAY = 0.5
MAX_DELAY = 30.0
#: Seconds a restarted process must stay up before its next exit counts as the first again.
RESET_AFTER = 60.0
STATE_FILE = "supervisor.json"


def backoff_delay(failures: int, first: float = FIRST_DELAY, cap: float = MAX_DELAY) -> float:
    """Seconds to wait before restarting a process after its ``failures``-th exit in a row."""
    if failures < 1:
        return 0.0
    # 2**(failures - 1) overflows nothing: past the cap the exponent no longer matters
    return min(first * 2.0 ** min(failures - 1, 32), cap)


def describe_exit(code: int | None) -> str:
    """``exit code 1``, ``signal 9``, or ``exited`` when it is not known (not our child)."""
    if code is None:
        return "exited"
    return f"signal {-code}" if code < 0 else f"exit code {code}"


@dataclass
class Tracked:
    """What the supervisor knows of one process, in the clock of ``time.monotonic``."""

    name: str
    pid: int | None = None
    restarts: int = 0
    failures: int = 0  # exits in a row (the back-off's exponent)
    up_since: float | None = None
    restart_at: float | None = None  # set while it is down and waiting for its restart
    last_exit: str = ""

    def seen_alive(self, pid: int, now: float) -> None:
        """It runs as ``pid`` (started by us, by ``stack up``, or found at our start)."""
        if self.pid != pid or self.up_since is None:
            self.pid, self.up_since = pid, now
        self.restart_at = None
        if self.failures and now - self.up_since >= RESET_AFTER:
            self.failures = 0

    def seen_dead(self, now: float, how: str = "exited") -> float | None:
        """It is not running: schedule its restart. Returns the delay when this is news,
        None when the restart was scheduled already."""
        if self.restart_at is not None:
            return None
        self.failures += 1
        self.up_since = None
        self.last_exit = how
        delay = backoff_delay(self.failures)
        self.restart_at = now + delay
        return delay

    def due(self, now: float) -> bool:
        return self.restart_at is not None and now >= self.restart_at

    def restarted(self, pid: int, now: float) -> None:
        self.restarts += 1
        self.pid, self.up_since, self.restart_at = pid, now, None

    def start_failed(self, now: float, why: str) -> float:
        """The restart itself failed (the program would not start): back off further."""
        self.restart_at = None
        return self.seen_dead(now, why) or 0.0

    def to_json(self, now: float) -> dict[str, Any]:
        waiting = None if self.restart_at is None else round(max(0.0, self.restart_at - now), 2)
        return {
            "pid": self.pid,
            "restarts": self.restarts,
            "exits_in_a_row": self.failures,
            "last_exit": self.last_exit,
            "restart_in_s": waiting,
        }


@dataclass
class SupervisorState:
    """The content of ``supervisor.json``: who supervises, and each process's record."""

    pid: int
    updated: float  # time.time() of the last write
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def restarts(self, name: str) -> int:
        return int(self.processes.get(name, {}).get("restarts", 0))


def write_state(run_dir: Path, tracked: dict[str, Tracked], now: float, pid: int | None = None) -> None:
    """Write ``supervisor.json`` whole (a reader never sees half a file)."""
    state = SupervisorState(
        pid or os.getpid(), time.time(), {name: t.to_json(now) for name, t in tracked.items()}
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f"{STATE_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(asdict(state), indent=1) + "\n")
    tmp.replace(run_dir / STATE_FILE)


def read_state(run_dir: Path) -> SupervisorState | None:
    """The last state a supervisor wrote in ``run_dir``, None when there is none."""
    try:
        data = json.loads((run_dir / STATE_FILE).read_text())
        return SupervisorState(int(data["pid"]), float(data["updated"]), dict(data["processes"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
