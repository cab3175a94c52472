"""The sessions fold (pure): a MatchFound that takes effect schedules one session.

The skill's partition of ``lemma.matching.v1`` is the arbiter (``shared.ticket_log``): two
matchers may both name one ticket during a rebalance, and only the first decision the log
holds counts. To apply that rule exactly as the matching service does, this fold keeps the
tickets too:

- ``tickets/{ticket_id}`` -> ``{state, learner_id, skill}``, written by the effective events, and
  by a request refused because its learner already waits (its ticket is left cancelled, so a
  later copy of it stays a copy); ``None`` in the rule: never seen, or named by void events only;
- ``open_tickets/{learner_id}/{skill}`` -> ``{ticket_id}``, present exactly while the learner has
  a waiting ticket in the skill (one open ticket per learner and skill).

Any other void event changes nothing, and no void event emits anything. An effective event
moves its tickets to ``state_after``; an effective MatchFound also schedules the session (keyed
by the match id), unless that session is already there. Every event the rule decides is in one partition, so a
batch folded in log order reaches the same verdicts as every other reader. A redelivered or
copied event finds its tickets past the state it needs and is void.

The session document is later changed by the command routes and the deadline sweep, and the
fold applies their events from ``lemma.sessions.v1`` too (``document.applied``): what a command
wrote, its event writes again (with the ``deadlines`` index entry that goes with it), so the
documents are rebuilt from the log alone (``lemma replay sessions``). A session only moves
forward, so an event the document already reflects is a no-op; the fold and the commands (of
any replica) each write only if the document is still as they read it (compare-and-set), so
neither overwrites the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from services.sessions import deadlines
from services.sessions.domain import applied, schedule
from shared.errors import EventRefused
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    LearnerErased,
    MatchCancelled,
    MatchExpired,
    MatchFound,
    MatchRequested,
    NoShowContested,
    NoShowUpheld,
    RatingSubmitted,
    SessionAbandoned,
    SessionCompleted,
    SessionConfirmed,
    SessionDisputed,
    SessionScheduled,
    SessionStarted,
)
from shared.projection.fold import NOTHING, Doc, DocRef, Outcome
from shared.ticket_log import TicketEvent, state_after, state_after_refusal, takes_effect, tickets_named

SESSIONS = "sessions"
#: learner_id -> {learner_id, purged}: learners who erased their data (``LearnerErased``); the
#: comment purge (``comments.CommentPurge``) deletes what the service holds of them and marks it
ERASED = "erased_learners"
TICKETS = "tickets"
OPEN_TICKETS = "open_tickets"


def open_ticket_key(learner_id: str, skill: str) -> str:
    return f"{learner_id}/{skill}"


def _owners(data: TicketEvent) -> list[tuple[str, str, str]]:
    """(ticket id, learner id, skill) of every ticket the event names, as the event states them."""
    if isinstance(data, MatchFound):
        return [(t.ticket_id, t.learner_id, data.skill) for t in data.tickets]
    return [(data.ticket_id, data.learner_id, data.skill)]


#: The session's own events, which the commands (and the MatchFound fold) publish.
OWN = (
    SessionScheduled
    | SessionStarted
    | SessionCompleted
    | SessionAbandoned
    | RatingSubmitted
    | SessionConfirmed
    | SessionDisputed
    | NoShowContested
    | NoShowUpheld
)


class SessionsProjection:
    name = "sessions"

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        data = event.data
        if isinstance(data, LearnerErased):
            return [(ERASED, data.learner_id)]
        if isinstance(data, OWN):
            return [(SESSIONS, data.session_id)]
        if not isinstance(data, MatchRequested | MatchFound | MatchCancelled | MatchExpired):
            return []
        refs: list[DocRef] = []
        for ticket_id, learner_id, skill in _owners(data):
            refs += [(TICKETS, ticket_id), (OPEN_TICKETS, open_ticket_key(learner_id, skill))]
        if isinstance(data, MatchFound):
            refs.append((SESSIONS, data.match_id))
        return refs

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        data = event.data
        if isinstance(data, LearnerErased):
            if docs.get((ERASED, data.learner_id)) is not None:
                return NOTHING
            return Outcome(
                changes={(ERASED, data.learner_id): {"learner_id": data.learner_id, "purged": False}}
            )
        if isinstance(data, OWN):
            ref = (SESSIONS, data.session_id)
            before = docs.get(ref)
            moved = applied(before, data, event.time, event.correlationid)
            if moved is None:
                return NOTHING
            return Outcome(changes={ref: moved, **deadlines.changes(before, moved)})
        if not isinstance(data, MatchRequested | MatchFound | MatchCancelled | MatchExpired):
            return NOTHING
        states: dict[str, str | None] = {}
        for ticket_id in tickets_named(data):
            ticket = docs.get((TICKETS, ticket_id))
            states[ticket_id] = None if ticket is None else str(ticket["state"])
        waits = False
        if isinstance(data, MatchRequested):
            waits = docs.get((OPEN_TICKETS, open_ticket_key(data.learner_id, data.skill))) is not None
        if not takes_effect(data, states, learner_has_open_ticket=waits):
            refused = state_after_refusal(data, states)
            if isinstance(data, MatchRequested) and refused is not None:
                # the learner already waits: the ticket is closed, so a later copy stays void
                ticket = {"state": refused, "learner_id": data.learner_id, "skill": data.skill}
                return Outcome(changes={(TICKETS, data.ticket_id): ticket})
            return NOTHING  # void: the log already decided otherwise (or a copy of a decision)
        if isinstance(data, MatchRequested):
            return Outcome(
                changes={
                    (TICKETS, data.ticket_id): {
                        "state": state_after(data),
                        "learner_id": data.learner_id,
                        "skill": data.skill,
                    },
                    (OPEN_TICKETS, open_ticket_key(data.learner_id, data.skill)): {
                        "ticket_id": data.ticket_id
                    },
                }
            )
        changes = _close(docs, data)
        if not isinstance(data, MatchFound):
            return Outcome(changes=changes)
        ref = (SESSIONS, data.match_id)
        if docs.get(ref) is not None:
            return Outcome(changes=changes)  # the session is there already: only the tickets move
        scheduled = schedule(data, event.time, event.correlationid)
        assert scheduled.event is not None
        return Outcome(changes={**changes, ref: scheduled.doc}, emit=(scheduled.event,))


def _close(docs: Mapping[DocRef, Doc | None], data: TicketEvent) -> dict[DocRef, Doc | None]:
    """Move the waiting tickets an effective event names to their final state; they stop being open.

    The event must name each ticket's learner and skill as its request did (a matcher builds
    its decisions from the requests); one that does not is refused, so the runtime dead-letters it.
    """
    changes: dict[DocRef, Doc | None] = {}
    for ticket_id, learner_id, skill in _owners(data):
        ticket = docs.get((TICKETS, ticket_id))
        assert ticket is not None  # effective: the ticket is waiting
        if (ticket["learner_id"], ticket["skill"]) != (learner_id, skill):
            raise EventRefused(
                f"{type(data).__name__} names ticket {ticket_id} as {learner_id} in {skill}; "
                f"it was requested by {ticket['learner_id']} in {ticket['skill']}"
            )
        changes[(TICKETS, ticket_id)] = {**ticket, "state": state_after(data)}
        index = (OPEN_TICKETS, open_ticket_key(learner_id, skill))
        if (docs.get(index) or {}).get("ticket_id") == ticket_id:
            changes[index] = None
    return changes
