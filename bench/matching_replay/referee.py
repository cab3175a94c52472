"""The checks of the matching replay, pure: a reference reader of the ticket log rule, and the
walk of sessions per learner and skill.

``Referee`` reads ``lemma.matching.v1`` the way ``shared.ticket_log`` says every reader must, in
its own words (so the bench does not only check the service's code against itself): in a
skill's partition, in log order,

- a MatchRequested opens its ticket unless the ticket id is known (a copy) or its learner
  already has an open ticket in the skill (refused: the ticket is closed as cancelled);
- a MatchFound takes effect only when both tickets are waiting (and are two tickets);
- a MatchCancelled / MatchExpired takes effect only when its ticket is waiting;
- everything else is void.

The driver uses it live (to know what happened to its tickets) and the final check runs a fresh
one over the whole log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    MatchCancelled,
    MatchExpired,
    MatchFound,
    MatchRequested,
    SessionAbandoned,
    SessionCompleted,
)

WAITING, MATCHED, CANCELLED, EXPIRED = "waiting", "matched", "cancelled", "expired"
TERMINAL = frozenset({MATCHED, CANCELLED, EXPIRED})

Verdict = Literal["effective", "void", "copy", "refused", "other"]


@dataclass
class TicketSeen:
    learner_id: str
    skill: str
    requested_at: datetime  # the event time of the effective MatchRequested
    requeue_of: str | None
    status: str = WAITING
    terminal_events: int = 0  # effective terminal events naming it (must end at exactly 1)


@dataclass(frozen=True)
class EffectiveMatch:
    match_id: str
    skill: str
    learners: tuple[str, str]
    tickets: tuple[str, str]
    at: datetime
    level_gap: float


@dataclass
class Referee:
    """Ticket states under the log rule, fed one partition's events in order (partitions are
    independent: a ticket, and a learner's open ticket in a skill, live in one partition)."""

    tickets: dict[str, TicketSeen] = field(default_factory=dict)
    open_of: dict[tuple[str, str], str] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)
    matches: dict[str, EffectiveMatch] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    #: A MatchFound that took effect but named a ticket of another learner or skill.
    misnamed: list[str] = field(default_factory=list)
    #: Why void MatchFound events were void: the state of the ticket that was not waiting.
    void_found_causes: Counter[str] = field(default_factory=Counter)
    #: Why void MatchCancelled / MatchExpired events were void: ``f"{kind}:{state}"``.
    void_closed_causes: Counter[str] = field(default_factory=Counter)

    def status(self, ticket_id: str) -> str | None:
        if ticket_id in self.refused:
            return CANCELLED
        seen = self.tickets.get(ticket_id)
        return None if seen is None else seen.status

    def apply(self, event: CloudEvent) -> Verdict:
        data = event.data
        kind = type(data).__name__
        verdict = self._apply(event)
        self.counts[f"{kind}:{verdict}"] += 1
        return verdict

    def _apply(self, event: CloudEvent) -> Verdict:
        data = event.data
        if isinstance(data, MatchRequested):
            if self.status(data.ticket_id) is not None:
                return "copy"
            slot = (data.learner_id, data.skill)
            if slot in self.open_of:
                self.refused.add(data.ticket_id)
                return "refused"
            self.tickets[data.ticket_id] = TicketSeen(
                data.learner_id, data.skill, event.time, data.requeue_of
            )
            self.open_of[slot] = data.ticket_id
            return "effective"
        if isinstance(data, MatchFound):
            (a, b) = (t.ticket_id for t in data.tickets)
            states = (self.status(a), self.status(b))
            if a == b or states != (WAITING, WAITING):
                for state in states:
                    if state != WAITING:
                        self.void_found_causes[str(state)] += 1
                return "void"
            for named in data.tickets:
                seen = self.tickets[named.ticket_id]
                if seen.learner_id != named.learner_id or seen.skill != data.skill:
                    self.misnamed.append(data.match_id)
                self._close(named.ticket_id, MATCHED)
            self.matches[data.match_id] = EffectiveMatch(
                data.match_id,
                data.skill,
                (data.tickets[0].learner_id, data.tickets[1].learner_id),
                (a, b),
                event.time,
                data.level_gap,
            )
            return "effective"
        if isinstance(data, MatchCancelled | MatchExpired):
            state = self.status(data.ticket_id)
            if state != WAITING:
                self.void_closed_causes[f"{type(data).__name__}:{state}"] += 1
                return "void"
            self._close(data.ticket_id, CANCELLED if isinstance(data, MatchCancelled) else EXPIRED)
            return "effective"
        return "other"

    def _close(self, ticket_id: str, status: str) -> None:
        seen = self.tickets[ticket_id]
        seen.status = status
        seen.terminal_events += 1
        if self.open_of.get((seen.learner_id, seen.skill)) == ticket_id:
            del self.open_of[(seen.learner_id, seen.skill)]


def sessions_overlap(
    matches: Iterable[EffectiveMatch], ends: Iterable[CloudEvent]
) -> tuple[int, int, list[str]]:
    """Walk each learner's effective matches (session starts) and session ends in time order, per
    skill; returns (the most sessions any learner had open at once in a skill, session ends
    naming no effective match, the match ids ended more than once).

    At equal times a start is taken before an end (the stricter reading)."""
    by_match = {m.match_id: m for m in matches}
    moments: list[tuple[datetime, int, str, str, str]] = []  # (time, 0 start / 1 end, learner, skill, id)
    orphan_ends = 0
    ended: Counter[str] = Counter()
    for event in ends:
        data = event.data
        if not isinstance(data, SessionCompleted | SessionAbandoned):
            continue
        match = by_match.get(data.session_id)
        if match is None:
            orphan_ends += 1
            continue
        ended[data.session_id] += 1
        if ended[data.session_id] > 1:
            continue
        for learner in match.learners:
            moments.append((event.time, 1, learner, match.skill, match.match_id))
    for match in by_match.values():
        for learner in match.learners:
            moments.append((match.at, 0, learner, match.skill, match.match_id))
    moments.sort()
    open_now: Counter[tuple[str, str]] = Counter()
    most = 0
    for _, kind, learner, skill, _ in moments:
        open_now[(learner, skill)] += 1 if kind == 0 else -1
        most = max(most, open_now[(learner, skill)])
    return most, orphan_ends, sorted(m for m, n in ended.items() if n > 1)
