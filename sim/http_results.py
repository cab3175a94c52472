"""What a drive over HTTP reports: each session run, each round, and the totals."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SessionRun:
    """A session the engine made and the driver ran."""

    session_id: str
    skill: str
    round: int
    participants: tuple[str, ...]
    outcome: str  # completed | no-show | failed | outside (a partner the simulation does not know)
    no_show: str | None = None
    ratings: int = 0


@dataclass
class RoundStats:
    skill: str
    round: int
    requests: int  # tickets the round's learners opened
    requeued: int  # tickets matching reopened after a no-show
    matched: int  # tickets the engine matched
    unmatched: int  # tickets cancelled at the end of the round
    seconds: float
    wait_p50_s: float  # from a request (or a requeue) to the driver seeing it matched
    wait_max_s: float


@dataclass
class DriveResult:
    learners: int = 0  # registered
    claims: int = 0
    sessions: int = 0  # matched by the engine and run
    completed: int = 0  # confirmed by both participants
    no_shows: int = 0
    ratings: int = 0
    unmatched: int = 0  # tickets still waiting at the end of their round (cancelled)
    errors: Counter[str] = field(default_factory=Counter)  # "POST /v1/... 409" -> count
    retried: Counter[str] = field(default_factory=Counter)  # calls tried again after a 502
    elapsed_s: float = 0.0
    rounds: int = 0
    requeued: int = 0
    waits_s: list[float] = field(default_factory=list)  # per matched ticket: request to matched seen
    round_stats: list[RoundStats] = field(default_factory=list)
    runs: list[SessionRun] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def completed_in(self, skill: str) -> int:
        return sum(1 for r in self.runs if r.skill == skill and r.outcome == "completed")

    def rated_in(self, skill: str) -> set[str]:
        """The learners who received a rating in ``skill``."""
        return {
            who
            for r in self.runs
            if r.skill == skill and r.outcome == "completed" and r.ratings == 2
            for who in r.participants
        }
