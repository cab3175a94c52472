"""Which matching events take effect: the skill's partition of ``lemma.matching.v1`` is the arbiter.

All of a skill's matching events share one partition (the topic is keyed by skill), so every
reader sees them in one order. In that order:

- a ``MatchRequested`` opens its ticket, unless the ticket id is already known (a copy) or the
  learner already has an open ticket in the skill (one open ticket per learner and skill); a
  request refused for that reason leaves its ticket cancelled, so a later copy of it (a producer
  retry lands anywhere after the original) is a copy, not a new ticket;
- a ``MatchFound`` takes effect only when both of its tickets are open at that point, and
  closes both (matched);
- a ``MatchCancelled`` or ``MatchExpired`` takes effect only when its ticket is open;
- anything else naming a ticket that is not open is void.

So two matchers that decided at the same time (during a rebalance, say) can never assign one
ticket twice: whichever decision the log holds first wins, and every reader (the matching
queue, the sessions service) reaches the same verdict. The rule is pure and shared because
more than one service applies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from shared.events.payloads import MatchCancelled, MatchExpired, MatchFound, MatchRequested, Payload

WAITING: Final = "waiting"
MATCHED: Final = "matched"
CANCELLED: Final = "cancelled"
EXPIRED: Final = "expired"

TicketEvent = MatchRequested | MatchFound | MatchCancelled | MatchExpired


def tickets_named(payload: Payload) -> tuple[str, ...]:
    """The ticket ids a matching event names (none for other events)."""
    if isinstance(payload, MatchFound):
        return (payload.tickets[0].ticket_id, payload.tickets[1].ticket_id)
    if isinstance(payload, MatchRequested | MatchCancelled | MatchExpired):
        return (payload.ticket_id,)
    return ()


def takes_effect(
    payload: Payload, states: Mapping[str, str | None], *, learner_has_open_ticket: bool = False
) -> bool:
    """Whether ``payload`` takes effect, given the current state of the tickets it names
    (``None``: never seen) and, for a request, whether its learner already waits in the skill."""
    if isinstance(payload, MatchRequested):
        return states.get(payload.ticket_id) is None and not learner_has_open_ticket
    if isinstance(payload, MatchFound):
        first, second = tickets_named(payload)
        return first != second and states.get(first) == WAITING and states.get(second) == WAITING
    if isinstance(payload, MatchCancelled | MatchExpired):
        return states.get(payload.ticket_id) == WAITING
    return False


def state_after_refusal(payload: Payload, states: Mapping[str, str | None]) -> str | None:
    """The state a request that did not take effect leaves its ticket in: cancelled when the
    ticket was new (its learner already waited), else unchanged (``None``: a copy)."""
    if isinstance(payload, MatchRequested) and states.get(payload.ticket_id) is None:
        return CANCELLED
    return None


def state_after(payload: TicketEvent) -> str:
    """The state the tickets an effective event names are left in."""
    if isinstance(payload, MatchRequested):
        return WAITING
    if isinstance(payload, MatchFound):
        return MATCHED
    if isinstance(payload, MatchCancelled):
        return CANCELLED
    return EXPIRED
