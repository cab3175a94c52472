"""CPU use during a phase of the load bench, by who used it: the stack's processes by role, the
load generator, and everything else on the machine (other work sharing the 2 cores).

Read from ``/proc``: each process's user + system time (its descendants' included, by parent
id), and the machine's busy time from ``/proc/stat``. A figure is in cores: CPU seconds over
the phase's wall seconds (2.0 is the whole machine).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK")


def _proc_times() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, user + system seconds) of every process readable now."""
    out: dict[int, tuple[int, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                text = f.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        out[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)
    return out


def _machine_busy() -> float:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    return (sum(parts[:8]) - idle) / TICK


@dataclass(frozen=True)
class Sample:
    at: float
    busy: float
    groups: dict[str, float]


def role(name: str) -> str:
    """The group a stack process counts in: ``kafka``, a service name, ``gateway``, ``supervisor``."""
    if name == "kafka" or name.startswith("kafka-"):
        return "kafka"
    return name.split("-")[0]


class CpuMeter:
    """Samples the CPU seconds of named process trees; ``groups`` maps a pid to its group."""

    def __init__(self, groups: dict[int, str]) -> None:
        self.groups = dict(groups)

    def add(self, pids: Iterable[int], group: str) -> None:
        for pid in pids:
            self.groups[pid] = group

    def _group_of(self, pid: int, procs: dict[int, tuple[int, float]]) -> str | None:
        """The group of the nearest ancestor (or itself) that names one (the stack's processes
        may be the bench's children: each counts in its own group, not the generator's)."""
        for _ in range(64):
            if pid in self.groups:
                return self.groups[pid]
            if pid not in procs or pid <= 1:
                return None
            pid = procs[pid][0]
        return None

    def sample(self) -> Sample:
        procs = _proc_times()
        totals: dict[str, float] = {}
        for pid, (_, seconds) in procs.items():
            group = self._group_of(pid, procs)
            if group is not None:
                totals[group] = totals.get(group, 0.0) + seconds
        return Sample(time.monotonic(), _machine_busy(), totals)


def cores(before: Sample, after: Sample) -> dict[str, float]:
    """Cores used between two samples, by group, with ``machine`` (all of it) and ``other``
    (the machine less every group). A process that ended between them counts what it had used
    at the first sample only up to then (its last seconds are lost), so ``other`` can be a
    little high."""
    wall = max(after.at - before.at, 1e-9)
    out = {
        group: round(max(0.0, after.groups.get(group, 0.0) - before.groups.get(group, 0.0)) / wall, 2)
        for group in sorted(set(before.groups) | set(after.groups))
    }
    machine = round((after.busy - before.busy) / wall, 2)
    out["machine"] = machine
    out["other"] = round(max(0.0, machine - sum(v for k, v in out.items() if k != "machine")), 2)
    return out
