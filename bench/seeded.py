"""What the benches on simulated populations share: the seeds (tuned on, held out), the populations
run side by side in processes, and a target check that says by how much it is met or missed."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

#: The seeds every constant of the SCI model was tuned on, and those the benches report on.
TUNING_SEEDS = [1, 2, 3]
HELD_OUT_SEEDS = [101, 102, 103]

_Task = TypeVar("_Task")


def add_seed_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 101 102 103")
    parser.add_argument("--tune", action="store_true", help="seeds 1 2 3 (the constants were tuned on them)")


def chosen_seeds(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[list[int], bool]:
    """The seeds asked for (held out by default), and whether none of them was tuned on."""
    if args.tune and args.seeds:
        parser.error("--tune and --seeds: choose one")
    seeds: list[int] = TUNING_SEEDS if args.tune else (args.seeds or HELD_OUT_SEEDS)
    return seeds, not set(seeds) & set(TUNING_SEEDS)


def seeds_line(learners: int, seeds: Sequence[int], held_out: bool, seconds: float, jobs: int) -> str:
    return (
        f"{learners} learners; seeds {' '.join(map(str, seeds))} "
        + ("(held out: the constants were tuned on 1-3)" if held_out else "(INCLUDES tuning seeds 1-3)")
        + f"; {seconds} s with {jobs} processes"
    )


def run_all(
    tasks: Sequence[_Task], one: Callable[[_Task], dict[str, Any]], jobs: int, first: Callable[[_Task], Any]
) -> list[dict[str, Any]]:
    """``one(task)`` for every task, in task order; ``jobs`` > 1: in that many processes, the
    tasks ordered by ``first`` (the slowest first, so no process is left with a long one at the end)."""
    if jobs <= 1:
        return [one(task) for task in tasks]
    order = sorted(range(len(tasks)), key=lambda i: first(tasks[i]))
    with ProcessPoolExecutor(jobs) as pool:
        done = dict(zip(order, pool.map(one, [tasks[i] for i in order]), strict=True))
    return [done[i] for i in range(len(tasks))]


@dataclass(frozen=True)
class Check:
    """One target: ``value`` against ``limit``, met or missed and by how much."""

    name: str
    value: float | None  # None: nothing was measured
    limit: float
    at_most: bool  # the value must be at most the limit (else at least)
    strict: bool = False  # ... strictly below (or above) it

    @property
    def ok(self) -> bool:
        if self.value is None:
            return False
        if self.at_most:
            return self.value < self.limit if self.strict else self.value <= self.limit
        return self.value > self.limit if self.strict else self.value >= self.limit

    @property
    def margin(self) -> float | None:
        """How far inside the limit the value is (negative: how far past it)."""
        if self.value is None:
            return None
        return self.limit - self.value if self.at_most else self.value - self.limit

    def line(self) -> str:
        word = "met" if self.ok else "MISSED"
        sign = ("<" if self.at_most else ">") + ("" if self.strict else "=")
        if self.value is None or self.margin is None:
            return f"{word}: {self.name}: nothing measured ({sign} {self.limit:.4f})"
        by = f"{'by' if self.ok else 'missed by'} {abs(self.margin):.4f}"
        return f"{word}: {self.name}: {self.value:.4f} ({sign} {self.limit:.4f}; {by})"

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "value": self.value, "limit": self.limit, "margin": self.margin}


def split(key: str) -> tuple[str, int]:
    """``"biased@8"`` as ``("biased", 8)``."""
    name, sessions = key.split("@")
    return name, int(sessions)
