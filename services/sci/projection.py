"""The SCI fold (pure): evidence, no-shows and claims per learner and skill; SciUpdated out.

One ``scores`` document per ``learner_id/skill`` holds the evidence items keyed by evidence
id (a second copy is a no-op), the no-show sessions, the claim flag, the latest as-of time
seen and the score at that time. The score is recomputed from the stored sets on every
change, and the as-of is the latest event time folded (a max), so the document is the same
for the same events whatever the order in which partitions deliver them.

Because the as-of is a max, evidence that happened earlier but arrives later gives a second
SciUpdated with the same as-of and a different score. Each SciUpdated therefore carries a
``revision``: the number of facts folded (evidence items plus no-show sessions). It grows
with every fact, and the highest revision is the whole set, so a reader that keeps the
update with the highest (revision, as_of, event id) ends on the score of everything folded.

A ``SessionAbandoned`` names the no-show learner but not the skill: the skill comes from a
small ``session_skill`` document kept from ``SessionScheduled``. Because ``refs`` must be
known before any document is read, a no-show loads the learner's document in every skill
the service knows (the catalog is small) and ``apply`` picks the session's one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from services.sci.domain import (
    TIER_CLAIMED,
    EvidenceItem,
    Score,
    count_no_shows,
    score,
    utc,
)
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    EvidenceRecorded,
    Payload,
    SciUpdated,
    SessionAbandoned,
    SessionScheduled,
    SkillClaimed,
    SkillUnclaimed,
    TierChanged,
)
from shared.projection.fold import NOTHING, Doc, DocRef, Outcome

SCORES = "scores"
SESSION_SKILL = "session_skill"


def score_key(learner_id: str, skill: str) -> str:
    return f"{learner_id}/{skill}"


def items_of(doc: Mapping[str, Any]) -> list[EvidenceItem]:
    return [EvidenceItem.from_doc(evidence_id, item) for evidence_id, item in doc["items"].items()]


def no_shows_of(doc: Mapping[str, Any], items: Iterable[EvidenceItem]) -> int:
    return count_no_shows(doc["no_shows"], items)


def visible(doc: Mapping[str, Any] | None) -> bool:
    """Shown by the read routes: a claimed skill or one with evidence (no-shows alone are not)."""
    return doc is not None and (bool(doc["claimed"]) or bool(doc["items"]))


def revision_of(doc: Mapping[str, Any]) -> int:
    """Facts folded into the score: evidence items plus no-show sessions (each counted once)."""
    return len(doc["items"]) + len(doc["no_shows"])


def score_of(doc: Mapping[str, Any], as_of: datetime) -> Score:
    items = items_of(doc)
    return score(items, no_shows_of(doc, items), as_of)


# What a learner has before any evidence: nothing to announce until this moves.
_UNSCORED: dict[str, Any] = {
    "sci": 0.0,
    "practice": 0.0,
    "proof": 0.0,
    "reliability": 0.0,
    "freshness": 0.0,
    "tier": TIER_CLAIMED,
    "sessions": 0,
}


def _empty(learner_id: str, skill: str) -> Doc:
    return {
        "learner_id": learner_id,
        "skill": skill,
        "claimed": False,
        "items": {},
        "no_shows": {},
        "as_of": None,
        "score": None,
    }


class SciProjection:
    name = "sci"

    def __init__(self, skills: Iterable[str]) -> None:
        """``skills``: the catalog's skill ids (where a no-show may land)."""
        self.skills = tuple(sorted(set(skills)))

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        data = event.data
        if isinstance(data, EvidenceRecorded | SkillClaimed | SkillUnclaimed):
            return [(SCORES, score_key(data.learner_id, data.skill))]
        if isinstance(data, SessionScheduled):
            return [(SESSION_SKILL, data.session_id)]
        if isinstance(data, SessionAbandoned) and data.no_show:
            learner = data.no_show
            return [(SESSION_SKILL, data.session_id), *((SCORES, score_key(learner, s)) for s in self.skills)]
        return []

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        data = event.data
        if isinstance(data, EvidenceRecorded):
            return self._evidence(docs, data, event.time)
        if isinstance(data, SessionScheduled):
            ref = (SESSION_SKILL, data.session_id)
            if docs.get(ref) is not None:
                return NOTHING
            return Outcome(changes={ref: {"skill": data.skill, "participants": list(data.participants)}})
        if isinstance(data, SessionAbandoned) and data.no_show:
            return self._no_show(docs, data, event.time)
        if isinstance(data, SkillClaimed):
            ref = (SCORES, score_key(data.learner_id, data.skill))
            current = docs.get(ref)
            if current is not None and current["claimed"]:
                return NOTHING
            return Outcome(
                changes={ref: {**(current or _empty(data.learner_id, data.skill)), "claimed": True}}
            )
        if isinstance(data, SkillUnclaimed):
            ref = (SCORES, score_key(data.learner_id, data.skill))
            current = docs.get(ref)
            if current is None or not current["claimed"]:
                return NOTHING
            if not current["items"] and not current["no_shows"]:
                return Outcome(changes={ref: None})
            # Evidence is a fact that outlives the claim: keep it (and its score).
            return Outcome(changes={ref: {**current, "claimed": False}})
        return NOTHING

    def _evidence(self, docs: Mapping[DocRef, Doc | None], data: EvidenceRecorded, at: datetime) -> Outcome:
        ref = (SCORES, score_key(data.learner_id, data.skill))
        current = docs.get(ref) or _empty(data.learner_id, data.skill)
        if data.evidence_id in current["items"]:
            return NOTHING  # a redelivery or a second copy
        item = EvidenceItem.from_event(data)
        return self._rescore(ref, current, {**current["items"], data.evidence_id: item.to_doc()}, None, at)

    def _no_show(self, docs: Mapping[DocRef, Doc | None], data: SessionAbandoned, at: datetime) -> Outcome:
        learner = data.no_show
        assert learner is not None
        session = docs.get((SESSION_SKILL, data.session_id))
        if session is None:
            raise ValueError(f"no-show for unknown session {data.session_id}")
        if learner not in session["participants"]:
            raise ValueError(f"no-show {learner} is not a participant of session {data.session_id}")
        ref = (SCORES, score_key(learner, session["skill"]))
        if ref not in docs:
            raise ValueError(f"session {data.session_id} is in skill {session['skill']}, unknown here")
        current = docs.get(ref) or _empty(learner, session["skill"])
        if data.session_id in current["no_shows"]:
            return NOTHING
        no_shows = {**current["no_shows"], data.session_id: True}
        return self._rescore(ref, current, None, no_shows, at)

    def _rescore(
        self,
        ref: DocRef,
        current: Doc,
        items: dict[str, Any] | None,
        no_shows: dict[str, Any] | None,
        at: datetime,
    ) -> Outcome:
        """Store the new sets, score them at the latest time seen, emit what moved."""
        at = utc(at)
        as_of = max(at, utc(datetime.fromisoformat(current["as_of"]))) if current["as_of"] else at
        doc: Doc = {
            **current,
            "items": current["items"] if items is None else items,
            "no_shows": current["no_shows"] if no_shows is None else no_shows,
            "as_of": as_of.isoformat(),
        }
        new = score_of(doc, as_of)
        doc["score"] = new.to_doc()
        before: dict[str, Any] = current["score"] or _UNSCORED
        emit: list[Payload] = []
        if doc["score"] != before:
            emit.append(
                SciUpdated(
                    learner_id=doc["learner_id"],
                    skill=doc["skill"],
                    sci=new.sci,
                    practice=new.practice,
                    proof=new.proof,
                    reliability=new.reliability,
                    freshness=new.freshness,
                    tier=new.tier,
                    sessions=new.sessions,
                    as_of=as_of,
                    revision=revision_of(doc),
                )
            )
        old_tier = int(before["tier"])
        if new.tier != old_tier:
            emit.append(
                TierChanged(
                    learner_id=doc["learner_id"],
                    skill=doc["skill"],
                    from_tier=old_tier,
                    to_tier=new.tier,
                    as_of=as_of,
                )
            )
        return Outcome(changes={ref: doc}, emit=tuple(emit))
