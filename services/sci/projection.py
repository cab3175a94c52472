"""The SCI fold (pure): evidence, no-shows and claims per learner and skill; SciUpdated out.

Documents:

- ``scores/{learner_id}/{skill}``: the learner's ``Facts`` in the skill (distinct sessions,
  counted no-shows, per-rater tallies in integer micro-points, newest evidence time), the claim
  flag, ``facts`` (evidence items plus no-show sessions folded, each once) and ``as_of`` (the
  latest event time folded, a max). Every field is a count, an exact integer sum or a max, and
  maps are written in sorted key order, so the stored bytes are the same for the same events
  in any order, with any duplicates.
- ``received/{skill}/{learner_id}/{session_id}``: the evidence items received in one session
  (keyed by evidence id, so a second copy is a no-op) and whether the learner was a no-show
  there. The calibration reads a skill's ratings from here, and the read routes the specialties.
- ``session_skill/{session_id}``: the skill and participants from SessionScheduled, because
  a no-show (NoShowUpheld, or SessionAbandoned of the old rule) names the learner but not the skill.
- ``calibrations/{skill}``: the rater calibration, written by the calibration job
  (``services.sci.recalibration``), only read here.

``apply`` scores each fact with the skill's current calibration and emits SciUpdated with
``revision`` = facts and ``calibration`` = the ratings the calibration covered; TierChanged when
the tier moved. The live runtime folds a batch with ``fold`` (the facts alone) and asks
``settle`` once what to announce: one SciUpdated per learner and skill the batch changed, the
one its last fact would have emitted, and TierChanged from the tier before the batch to the
tier after. Readers keep the greatest revision, which is the one announced. A rebuild folds
facts alone and scores nothing (catch-up mode): the stored facts do not depend on the
calibration, so it gives the same documents; it calibrates the new version at the end and
announces changed scores when it goes live. The calibration job re-scores a skill when the
calibration changes.

A no-show counts against the learner once the claim stands (``no_show_of``): NoShowUpheld, when
the accused let the window to contest it pass; or a SessionAbandoned logged before claims could
be contested (no ``contest_by``), which stood at once. A claim still open, or contested, costs
nothing. A no-show names no skill, and ``refs`` must be known before any document is read, so it
loads the learner's documents in every catalog skill and ``apply`` picks the one of the
session's skill.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.sci.documents import (
    CALIBRATIONS as CALIBRATIONS,
)
from services.sci.documents import (
    RECEIVED as RECEIVED,
)
from services.sci.documents import (
    SCORES as SCORES,
)
from services.sci.documents import (
    SESSION_SKILL as SESSION_SKILL,
)
from services.sci.documents import (
    _empty as _empty,
)
from services.sci.documents import (
    _later as _later,
)
from services.sci.documents import (
    as_of_of as as_of_of,
)
from services.sci.documents import (
    current_score as current_score,
)
from services.sci.documents import (
    facts_at as facts_at,
)
from services.sci.documents import (
    facts_from_doc as facts_from_doc,
)
from services.sci.documents import (
    facts_to_doc as facts_to_doc,
)
from services.sci.documents import (
    items_of as items_of,
)
from services.sci.documents import (
    received_key as received_key,
)
from services.sci.documents import (
    received_prefix as received_prefix,
)
from services.sci.documents import (
    sci_updated as sci_updated,
)
from services.sci.documents import (
    score_key as score_key,
)
from services.sci.documents import (
    visible as visible,
)
from services.sci.domain import (
    SCORE_MODEL,
    TIER_CLAIMED,
    UNCALIBRATED,
    Correction,
    EvidenceItem,
    Facts,
    RubricTally,
    score,
    to_micro,
)
from shared.errors import EventRefused
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    EvidenceRecorded,
    NoShowUpheld,
    Payload,
    SciUpdated,
    SessionAbandoned,
    SessionScheduled,
    SkillClaimed,
    SkillUnclaimed,
    TierChanged,
)
from shared.events.registry import Topic
from shared.projection.fold import NOTHING, CatchUpPhase, Changes, Doc, DocRef, Outcome


class SciProjection:
    name = "sci"
    model = SCORE_MODEL  # the rules a version is built with (``shared.projection.versions``)
    #: Read by the fold, written only by the calibration job (which tells the runtime): read
    #: once, not once a batch (``ProjectionRuntime.kept_collections``).
    kept = frozenset({CALIBRATIONS})
    #: How a rebuild may fold the log in parallel (``shared.rebuild_workers``): evidence and
    #: claims are keyed by learner and touch that learner's documents only, a session's
    #: scheduling its own document only, so each partition number is folded apart. A no-show is
    #: keyed by its session but changes the learner's documents: it is set aside and folded
    #: once the rest is. Every field is a count, a sum or a max (see above), and a no-show's
    #: refusal depends on its session's document alone (written once), so that order gives
    #: the same documents.
    catch_up_phases = (
        CatchUpPhase(
            (Topic.EVIDENCE, Topic.PASSPORT, Topic.SESSIONS),
            apart=True,
            deferred={Topic.SESSIONS: frozenset({SCORES, RECEIVED})},
        ),
    )

    def __init__(self, skills: Iterable[str]) -> None:
        """``skills``: the catalog's skill ids (where a no-show may land)."""
        self.skills = tuple(sorted(set(skills)))
        #: per skill, the last calibration document read and its ``Correction``
        self._corrections: dict[str, tuple[Doc, Correction]] = {}
        #: per score document, the tier ``settle`` last worked out, with the facts and the
        #: correction it was for: the next batch's tier before, without scoring it again
        self._tiers: dict[DocRef, tuple[tuple[Any, ...], Correction, int]] = {}

    def correction(self, skill: str, doc: Doc | None) -> Correction:
        """``Correction.from_doc(doc)``, built once per document object rather than once per event.

        A batch loads the skill's calibration document once and hands the same object to every
        event, and the fold never changes it; parsing it per event (a set of every senior learner
        each time) held the event loop for seconds a batch on a calibrated skill.
        """
        if doc is None:
            return UNCALIBRATED
        cached = self._corrections.get(skill)
        if cached is not None and cached[0] is doc:
            return cached[1]
        correction = Correction.from_doc(doc)
        self._corrections[skill] = (doc, correction)
        return correction

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        data = event.data
        if isinstance(data, EvidenceRecorded):
            return [
                (SCORES, score_key(data.learner_id, data.skill)),
                (RECEIVED, received_key(data.skill, data.learner_id, data.session_id)),
                (CALIBRATIONS, data.skill),
            ]
        if isinstance(data, SkillClaimed | SkillUnclaimed):
            return [(SCORES, score_key(data.learner_id, data.skill))]
        if isinstance(data, SessionScheduled):
            return [(SESSION_SKILL, data.session_id)]
        if isinstance(data, SessionAbandoned | NoShowUpheld) and (learner := no_show_of(data)) is not None:
            refs: list[DocRef] = [(SESSION_SKILL, data.session_id)]
            for skill in self.skills:
                refs += [
                    (SCORES, score_key(learner, skill)),
                    (RECEIVED, received_key(skill, learner, data.session_id)),
                    (CALIBRATIONS, skill),
                ]
            return refs
        return []

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        data = event.data
        if isinstance(data, EvidenceRecorded | SessionAbandoned | NoShowUpheld):
            fact = self._fact(docs, event)
            if fact is None:
                return NOTHING
            if not fact.doc["raters"]:
                return Outcome(changes=fact.changes)  # no ratings yet: nothing to announce
            correction = self.correction(fact.skill, docs.get((CALIBRATIONS, fact.skill)))
            return Outcome(changes=fact.changes, emit=announce(fact.doc, fact.before, fact.after, correction))
        return Outcome(changes=self.fold(docs, event))

    def fold(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Changes:
        """The changes of ``apply``, without scoring (catch-up, and the live fold of a batch)."""
        data = event.data
        if isinstance(data, EvidenceRecorded | SessionAbandoned | NoShowUpheld):
            fact = self._fact(docs, event)
            return {} if fact is None else fact.changes
        if isinstance(data, SessionScheduled):
            ref = (SESSION_SKILL, data.session_id)
            if docs.get(ref) is not None:
                return {}
            return {ref: {"skill": data.skill, "participants": list(data.participants)}}
        if isinstance(data, SkillClaimed):
            ref = (SCORES, score_key(data.learner_id, data.skill))
            current = docs.get(ref)
            if current is not None and current["claimed"]:
                return {}
            return {ref: {**(current or _empty(data.learner_id, data.skill)), "claimed": True}}
        if isinstance(data, SkillUnclaimed):
            ref = (SCORES, score_key(data.learner_id, data.skill))
            current = docs.get(ref)
            if current is None or not current["claimed"]:
                return {}
            if not current["facts"]:
                return {ref: None}
            # Evidence is a fact that outlives the claim: keep it (and its score).
            return {ref: {**current, "claimed": False}}
        return {}

    def settle(
        self,
        before: Mapping[DocRef, Doc | None],
        after: Mapping[DocRef, Doc | None],
        changed: Iterable[DocRef],
    ) -> list[tuple[DocRef, tuple[Payload, ...]]]:
        """One announcement per learner and skill whose facts the batch changed: the score after
        the batch (its greatest revision), and TierChanged from the tier before the batch to the
        tier after when they differ (a tier that moved and came back within the batch is not
        announced). A claim alone announces nothing, as ``apply`` does not."""
        out: list[tuple[DocRef, tuple[Payload, ...]]] = []
        for ref in changed:
            if ref[0] != SCORES:
                continue
            doc = after.get(ref)
            if doc is None or not doc["raters"]:
                continue
            old = before.get(ref)
            if old is not None and old["facts"] == doc["facts"]:
                continue
            skill = doc["skill"]
            correction = self.correction(skill, after.get((CALIBRATIONS, skill)))
            payloads, tier = scored(doc, self._tier_of(ref, old, correction), facts_from_doc(doc), correction)
            self._tiers[ref] = (_stamp(doc), correction, tier)
            out.append((ref, payloads))
        return out

    def _tier_of(self, ref: DocRef, doc: Doc | None, correction: Correction) -> int:
        """The tier of ``doc`` (before a batch) under ``correction``: the one the last batch
        worked out for these facts when it still holds (a tier depends on the facts and the
        correction only, not on the time it is read at), else worked out again."""
        if doc is None or not doc["raters"]:
            return TIER_CLAIMED
        held = self._tiers.get(ref)
        if held is not None and held[0] == _stamp(doc) and held[1] is correction:
            return held[2]
        facts = facts_from_doc(doc)
        as_of = as_of_of(doc)
        assert as_of is not None
        return score(
            facts, as_of, correction, earned_at=facts.last_evidence_at, learner_id=doc["learner_id"]
        ).tier

    def _fact(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> _Fact | None:
        data = event.data
        if isinstance(data, EvidenceRecorded):
            return self._evidence(docs, data, event.time)
        if isinstance(data, SessionAbandoned | NoShowUpheld) and (learner := no_show_of(data)) is not None:
            return self._no_show(docs, data.session_id, learner, event.time)
        return None

    def _evidence(
        self, docs: Mapping[DocRef, Doc | None], data: EvidenceRecorded, at: datetime
    ) -> _Fact | None:
        """The rating joins its rater's tally, in the document as stored (no ``Facts`` built:
        ``Facts.with_rating`` on the stored facts gives the same document, and this runs for
        every rating a rebuild folds)."""
        ref = (SCORES, score_key(data.learner_id, data.skill))
        received_ref = (RECEIVED, received_key(data.skill, data.learner_id, data.session_id))
        received = docs.get(received_ref) or {"items": {}, "no_show": False}
        if data.evidence_id in received["items"]:
            return None  # a redelivery or a second copy
        item = EvidenceItem.from_event(data)
        current = docs.get(ref) or _empty(data.learner_id, data.skill)
        micro = to_micro(item.mean)
        raters = current["raters"]
        held = raters.get(item.rater_id)
        if held is None:
            raters = dict(sorted({**raters, item.rater_id: [1, micro, micro * micro]}.items()))
        else:
            raters = {**raters, item.rater_id: [held[0] + 1, held[1] + micro, held[2] + micro * micro]}
        rubric = current.get("rubric", {})
        if item.scores:
            tally = RubricTally.from_doc(rubric.get(item.rater_id, (0, {}))).add(item.scores)
            rubric = dict(sorted({**rubric, item.rater_id: tally.to_doc()}.items()))
        new_session = not received["items"]
        doc: Doc = {
            **current,
            "facts": current["facts"] + 1,
            "sessions": current["sessions"] + new_session,
            "no_shows": current["no_shows"] - (new_session and received["no_show"]),
            "raters": raters,
            "rubric": rubric,
            "last_evidence_at": _later(current["last_evidence_at"], item.occurred_at),
            "as_of": _later(current["as_of"], at),
        }
        items = {**received["items"], data.evidence_id: item.to_doc()}
        new_received = {**received, "items": dict(sorted(items.items()))}
        return _Fact(ref, doc, {received_ref: new_received}, data.skill, current)

    def _no_show(
        self, docs: Mapping[DocRef, Doc | None], session_id: str, learner: str, at: datetime
    ) -> _Fact | None:
        session = docs.get((SESSION_SKILL, session_id))
        if session is None:
            raise EventRefused(f"no-show for unknown session {session_id}")
        if learner not in session["participants"]:
            raise EventRefused(f"no-show {learner} is not a participant of session {session_id}")
        skill = session["skill"]
        if skill not in self.skills:  # ``refs`` loaded the catalog's skills only
            raise EventRefused(f"session {session_id} is in skill {skill}, unknown here")
        ref = (SCORES, score_key(learner, skill))
        received_ref = (RECEIVED, received_key(skill, learner, session_id))
        received = docs.get(received_ref) or {"items": {}, "no_show": False}
        if received["no_show"]:
            return None
        current = docs.get(ref) or _empty(learner, skill)
        doc: Doc = {
            **current,
            "facts": current["facts"] + 1,
            "no_shows": current["no_shows"] + (not received["items"]),
            "as_of": _later(current["as_of"], at),
        }
        marked = {received_ref: {**received, "no_show": True}}
        return _Fact(ref, doc, marked, skill, current)


def no_show_of(data: Payload) -> str | None:
    """The learner an event counts as a no-show, if it does: an upheld claim, or an abandon of
    the old rule (its claim stood at once). An abandon whose claim may be contested counts nothing."""
    if isinstance(data, NoShowUpheld):
        return data.no_show
    if isinstance(data, SessionAbandoned):
        return data.standing_no_show
    return None


@dataclass(frozen=True)
class _Fact:
    """One fact folded into a learner's ``scores`` document: the new document, the other
    documents it changed, and the facts before and after (so nothing is parsed twice)."""

    ref: DocRef
    doc: Doc
    more: Mapping[DocRef, Doc]
    skill: str
    current: Doc  # the document before

    @property
    def changes(self) -> dict[DocRef, Doc | None]:
        return {self.ref: self.doc, **self.more}

    @property
    def before(self) -> Facts:
        return facts_from_doc(self.current)

    @property
    def after(self) -> Facts:
        return facts_from_doc(self.doc)


def announce(doc: Doc, before: Facts, after: Facts, correction: Correction) -> tuple[Payload, ...]:
    """SciUpdated for ``doc`` (whose facts went from ``before`` to ``after``), scored with
    ``correction`` at its as-of; TierChanged too when the tier moved. Both tiers are the ones
    earned at their newest evidence."""
    as_of = as_of_of(doc)
    assert as_of is not None
    old_tier = TIER_CLAIMED
    if before.raters:
        learner = doc["learner_id"]
        old_tier = score(
            before, as_of, correction, earned_at=before.last_evidence_at, learner_id=learner
        ).tier
    return scored(doc, old_tier, after, correction)[0]


def scored(doc: Doc, old_tier: int, after: Facts, correction: Correction) -> tuple[tuple[Payload, ...], int]:
    """What ``announce`` emits, given the tier before; and the tier after."""
    as_of = as_of_of(doc)
    assert as_of is not None
    new = score(after, as_of, correction, earned_at=after.last_evidence_at, learner_id=doc["learner_id"])
    if new.tier == old_tier:
        return (sci_updated(doc, new, correction),), new.tier
    changed = TierChanged(
        learner_id=doc["learner_id"],
        skill=doc["skill"],
        from_tier=old_tier,
        to_tier=new.tier,
        as_of=new.as_of,
    )
    return (sci_updated(doc, new, correction), changed), new.tier


def _stamp(doc: Mapping[str, Any]) -> tuple[Any, ...]:
    """What names a score document's facts within a version (its facts only ever grow)."""
    return (doc["facts"], doc["sessions"], doc["no_shows"], doc["last_evidence_at"])


def rescored(
    scores: Iterable[Mapping[str, Any]], old: Correction, new: Correction
) -> list[SciUpdated | TierChanged]:
    """What a new calibration announces: SciUpdated for each learner whose score moves under it
    (same revision, higher ``calibration``), TierChanged when the tier moves too."""
    emit: list[SciUpdated | TierChanged] = []
    for doc in scores:
        if not doc["raters"]:
            continue
        before, after = current_score(doc, old), current_score(doc, new)
        if after == before:
            continue
        emit.append(sci_updated(doc, after, new))
        if after.tier != before.tier:
            emit.append(
                TierChanged(
                    learner_id=doc["learner_id"],
                    skill=doc["skill"],
                    from_tier=before.tier,
                    to_tier=after.tier,
                    as_of=after.as_of,
                )
            )
    return emit
