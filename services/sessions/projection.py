"""The sessions fold (pure): every MatchFound on ``lemma.matching.v1`` schedules one session.

The session document is keyed by the match id, so a redelivered MatchFound (same event
or a second copy) finds its session already there and changes nothing. The same
document is later changed by the command routes; both run under the service's one
write lock, so they never interleave.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from services.sessions.domain import schedule
from shared.events.envelope import CloudEvent
from shared.events.payloads import MatchFound
from shared.projection.fold import NOTHING, Doc, DocRef, Outcome

SESSIONS = "sessions"


class SessionsProjection:
    name = "sessions"

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        if isinstance(event.data, MatchFound):
            return [(SESSIONS, event.data.match_id)]
        return []

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        data = event.data
        if not isinstance(data, MatchFound):
            return NOTHING  # requests, cancellations, expiries: not ours
        ref = (SESSIONS, data.match_id)
        if docs.get(ref) is not None:
            return NOTHING  # already scheduled
        scheduled = schedule(data, event.time, event.correlationid)
        assert scheduled.event is not None
        return Outcome(changes={ref: scheduled.doc}, emit=(scheduled.event,))
