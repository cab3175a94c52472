"""The decisions a benchmark run made, checked against the rules from its log alone.

The log is read per skill in the order it was written (one skill, one partition, one order),
with the rule of ``shared.ticket_log``. The checks, each a count that must be 0:

- ``named_twice``: a ticket named by more than one decision (MatchFound or MatchExpired): the
  matcher never offers a ticket twice, so with one replica no decision is ever void;
- ``void``: a decision the log rule voids (a ticket not waiting when it came);
- ``self_pairs``: a MatchFound of one learner with themself;
- ``recent_partners``: a MatchFound of two learners who were partners in the skill within either
  one's last ``recent`` matches there;
- ``early_expiries``: a MatchExpired of a ticket that had not waited its time to live;
- ``outside_window``: a MatchFound whose level gap exceeds the window of its longer-waiting
  ticket at the time of the decision.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from services.matching.engine import EPSILON, Rules
from shared.events.envelope import CloudEvent
from shared.events.payloads import MatchExpired, MatchFound, MatchRequested
from shared.ticket_log import state_after, takes_effect


def check_log(events: Iterable[CloudEvent], rules: Rules) -> dict[str, Any]:
    """The checks above over ``events`` (every skill's, in the order written)."""
    states: dict[str, str | None] = {}
    opened: dict[str, MatchRequested] = {}
    queued_at: dict[str, Any] = {}
    waiting_learner: dict[tuple[str, str], str] = {}  # (skill, learner) -> their open ticket
    history: dict[tuple[str, str], list[str]] = defaultdict(list)  # (skill, learner) -> partners
    named: dict[str, int] = defaultdict(int)
    counts = dict.fromkeys(
        ("named_twice", "void", "self_pairs", "recent_partners", "early_expiries", "outside_window"), 0
    )
    decisions = matches = expiries = 0
    for event in events:
        data = event.data
        if isinstance(data, MatchRequested):
            has_open = (data.skill, data.learner_id) in waiting_learner
            if takes_effect(data, states, learner_has_open_ticket=has_open):
                states[data.ticket_id] = "waiting"
                opened[data.ticket_id] = data
                queued_at[data.ticket_id] = event.time
                waiting_learner[(data.skill, data.learner_id)] = data.ticket_id
            elif data.ticket_id not in states:
                states[data.ticket_id] = "cancelled"
            continue
        if not isinstance(data, MatchFound | MatchExpired):
            continue
        decisions += 1
        ids = [t.ticket_id for t in data.tickets] if isinstance(data, MatchFound) else [data.ticket_id]
        for ticket_id in ids:
            named[ticket_id] += 1
            if named[ticket_id] == 2:
                counts["named_twice"] += 1
        if not takes_effect(data, states):
            counts["void"] += 1
            continue
        for ticket_id in ids:
            states[ticket_id] = state_after(data)
            request = opened[ticket_id]
            waiting_learner.pop((request.skill, request.learner_id), None)
        if isinstance(data, MatchExpired):
            expiries += 1
            if (event.time - queued_at[data.ticket_id]).total_seconds() + EPSILON < rules.ttl_s:
                counts["early_expiries"] += 1
            continue
        matches += 1
        a, b = (t.learner_id for t in data.tickets)
        if a == b:
            counts["self_pairs"] += 1
        keep = rules.recent_partners
        if keep > 0 and (b in history[(data.skill, a)][-keep:] or a in history[(data.skill, b)][-keep:]):
            counts["recent_partners"] += 1
        history[(data.skill, a)].append(b)
        history[(data.skill, b)].append(a)
        older = opened[data.tickets[0].ticket_id]
        waited = (event.time - older.requested_at).total_seconds()
        if data.level_gap > rules.window(waited) + EPSILON:
            counts["outside_window"] += 1
    return {"decisions": decisions, "matches": matches, "expiries": expiries, **counts}


def passed(checks: dict[str, Any]) -> bool:
    return all(checks[k] == 0 for k in checks if k not in ("decisions", "matches", "expiries"))
