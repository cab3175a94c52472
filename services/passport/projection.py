"""The passport fold (pure): passports and live skill figures from three topics.

Read model:

- ``passports``: learner_id -> {learner_id, handle, registered, skills: {skill: entry}}; the
  earliest registration holds; an entry holds the claim (last writer wins by (event time, id)),
  the sessions with evidence, evidence counts per specialty, the last evidence time and the
  latest SCI (the greatest (``model``, ``revision``, ``calibration``, ``as_of``, event id) wins: sci
  stamps an update with a max as-of, so two updates may share it; the revision, which grows
  with every fact sci folded, tells the newer one, and at one revision the calibration, which
  only grows, tells a rescore under newer rater calibration). The score keeps the update's
  ``last_evidence_at``, from which the views decay Freshness at read time (``domain.decayed``).
- ``skill_stats``: skill -> {learners, sessions_completed, tiers, centi}: kept exactly by
  subtracting an entry's old contribution and adding its new one on every change. Sums are
  integers in hundredths (SCI parts have two decimals), so the arithmetic never drifts. They
  sum the stored scores (as of each learner's latest SciUpdated), never read-time decayed ones.
- ``skill_sessions``: "skill/session_id" -> marker; counts each completed session once.
- ``passport_evidence``: evidence_id -> marker; a second copy of an item changes nothing.
- ``passport_trail``: "learner_id/stamp(occurred_at)/evidence_id" -> {evidence_id, skill,
  specialty, format, session_id, rater_id, rating (mean rubric score), occurred_at}: the
  evidence trail, written with the item's marker (so once), or later for an item counted
  before the trail existed when the log is folded again; stamps are fixed-width UTC, so a
  descending scan of a learner's prefix is newest first.
- ``rater_bias``: "skill/rater_id" -> {bias, ratings, digest}, from RatersCalibrated: the bias
  of the calibration with the greatest (``ratings``, ``digest``) wins, whatever the delivery
  order; the parts of one calibration touch disjoint raters. The trail's calibrated ratings
  are read through it (``domain.calibrated``).

- ``learners`` and ``handles``: the write model the routes keep, from the service's own events
  as the routes wrote it (``domain.learner_applied``, ``domain.handle_applied``), so a rebuild
  gives it back; display names, handles and the waitlist are not in the log (``personal_*``).
  An old ``LearnerRegistered`` (which carried the handle) of a learner in ``personal_erasures``
  is folded without its handle, and ``LearnerErased`` drops the handle it left: a rebuild
  never brings an erased handle back.

Every rule is a union, a maximum or a last-writer-wins by a total order, so the state does
not depend on how partitions interleave or on duplicates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from services.passport.domain import (
    ERASURES,
    HANDLES,
    LEARNERS,
    decayed,
    handle_applied,
    learner_applied,
    stamp,
)
from shared.events.envelope import CloudEvent
from shared.events.payloads import (
    EvidenceRecorded,
    LearnerErased,
    LearnerJoined,
    LearnerRegistered,
    RatersCalibrated,
    SciUpdated,
    SkillClaimed,
    SkillUnclaimed,
)
from shared.projection.fold import NOTHING, Doc, DocRef, Outcome

PASSPORTS = "passports"
SKILL_STATS = "skill_stats"
SKILL_SESSIONS = "skill_sessions"
EVIDENCE_SEEN = "passport_evidence"
TRAIL = "passport_trail"
RATER_BIAS = "rater_bias"

PARTS = ("sci", "practice", "proof", "reliability", "freshness")
TIERS = ("1", "2", "3", "4")


def session_key(skill: str, session_id: str) -> str:
    return f"{skill}/{session_id}"


def trail_prefix(learner_id: str) -> str:
    return f"{learner_id}/"


def trail_key(learner_id: str, occurred_at: datetime, evidence_id: str) -> str:
    """Key order within a learner is time order (then evidence id)."""
    return f"{trail_prefix(learner_id)}{stamp(occurred_at)}/{evidence_id}"


def bias_key(skill: str, rater_id: str) -> str:
    return f"{skill}/{rater_id}"


def trail_item(data: EvidenceRecorded) -> Doc | None:
    """The trail document of an evidence item; ``None`` for one without scores (no rating)."""
    if not data.scores:
        return None
    return {
        "evidence_id": data.evidence_id,
        "skill": data.skill,
        "specialty": data.specialty,
        "format": data.format,
        "session_id": data.session_id,
        "rater_id": data.rater_id,
        "rating": math.fsum(data.scores.values()) / len(data.scores),
        "occurred_at": stamp(data.occurred_at),
    }


def empty_entry() -> Doc:
    return {
        "claim": None,
        "sessions": [],
        "specialties": {},
        "evidence": 0,
        "last_evidence_at": None,
        "score": None,
    }


def empty_stats() -> Doc:
    return {
        "learners": 0,
        "sessions_completed": 0,
        "tiers": dict.fromkeys(TIERS, 0),
        "centi": dict.fromkeys(PARTS, 0),
    }


def is_active(entry: Mapping[str, Any]) -> bool:
    """An entry counts (and shows) while the skill is claimed or has evidence."""
    claim = entry.get("claim")
    return bool(entry.get("sessions")) or (claim is not None and claim["self_level"] is not None)


def figures(entry: Mapping[str, Any]) -> tuple[int, dict[str, float]]:
    """Tier and SCI parts of an entry; a skill without an SCI yet is tier 1 with zeros."""
    score = entry.get("score")
    if score is None:
        return 1, dict.fromkeys(PARTS, 0.0)
    return int(score["tier"]), {p: float(score[p]) for p in PARTS}


def _contribution(entry: Mapping[str, Any] | None) -> tuple[str, dict[str, int]] | None:
    if entry is None or not is_active(entry):
        return None
    tier, parts = figures(entry)
    return str(tier), {p: round(v * 100) for p, v in parts.items()}


def restat(stats: Doc | None, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> Doc:
    """``stats`` minus the old entry's contribution plus the new one's (a fresh doc)."""
    base = stats or empty_stats()
    out: Doc = {**base, "tiers": dict(base["tiers"]), "centi": dict(base["centi"])}
    for sign, contribution in ((-1, _contribution(old)), (1, _contribution(new))):
        if contribution is None:
            continue
        tier, centi = contribution
        out["learners"] += sign
        out["tiers"][tier] += sign
        for part, value in centi.items():
            out["centi"][part] += sign * value
    return out


def _newer(key: tuple[str, str], held: Mapping[str, Any] | None) -> bool:
    return held is None or key > (held["at"], held["event"])


def _newer_score(key: tuple[int, int, int, str, str], held: Mapping[str, Any] | None) -> bool:
    """Whether an SciUpdated keyed (model, revision, calibration, as_of, event id) beats the
    held score.

    A score stored before models, revisions or calibrations existed counts 0 for each.
    """
    if held is None:
        return True
    stored = (int(held.get("model", 0)), int(held.get("revision", 0)), int(held.get("calibration", 0)))
    return key > (*stored, held["at"], held["event"])


class PassportProjection:
    name = "passport"

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        data = event.data
        if isinstance(data, LearnerRegistered):
            return [
                (PASSPORTS, data.learner_id),
                (LEARNERS, data.learner_id),
                (HANDLES, data.handle),
                (ERASURES, data.learner_id),
            ]
        if isinstance(data, LearnerJoined | LearnerErased):
            return [(PASSPORTS, data.learner_id), (LEARNERS, data.learner_id)]
        if isinstance(data, SkillClaimed | SkillUnclaimed):
            return [(PASSPORTS, data.learner_id), (SKILL_STATS, data.skill), (LEARNERS, data.learner_id)]
        if isinstance(data, SciUpdated):
            return [(PASSPORTS, data.learner_id), (SKILL_STATS, data.skill)]
        if isinstance(data, EvidenceRecorded):
            return [
                (PASSPORTS, data.learner_id),
                (SKILL_STATS, data.skill),
                (EVIDENCE_SEEN, data.evidence_id),
                (SKILL_SESSIONS, session_key(data.skill, data.session_id)),
                (TRAIL, trail_key(data.learner_id, data.occurred_at, data.evidence_id)),
            ]
        if isinstance(data, RatersCalibrated):
            return [(RATER_BIAS, bias_key(data.skill, rater)) for rater in sorted(data.bias)]
        return []

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        """The passport's figures, and for the service's own events the write model the
        commands keep (``learners``, ``handles``) as they wrote it."""
        outcome = self._apply(docs, event)
        data = event.data
        if not isinstance(
            data, LearnerRegistered | LearnerJoined | LearnerErased | SkillClaimed | SkillUnclaimed
        ):
            return outcome
        changes = dict(outcome.changes)
        erased = docs.get((ERASURES, data.learner_id)) is not None
        learner = learner_applied(
            docs.get((LEARNERS, data.learner_id)), data, event.time, event.id, erased=erased
        )
        if learner is not None:
            changes[(LEARNERS, data.learner_id)] = learner
        if isinstance(data, LearnerRegistered) and not erased:
            owner = handle_applied(docs.get((HANDLES, data.handle)), data, event.time, event.id)
            if owner is not None:
                changes[(HANDLES, data.handle)] = owner
        return Outcome(changes=changes, emit=outcome.emit)

    def _apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        data = event.data
        if isinstance(data, LearnerRegistered | LearnerJoined):
            ref = (PASSPORTS, data.learner_id)
            passport = docs.get(ref) or _new_passport(data.learner_id)
            key = [stamp(event.time), event.id]
            held = passport.get("registered")
            if held is not None and key >= held:
                return NOTHING  # registered once: the earliest registration holds
            hidden = passport.get("erased") or docs.get((ERASURES, data.learner_id)) is not None
            handle = data.handle if isinstance(data, LearnerRegistered) and not hidden else None
            return Outcome(changes={ref: {**passport, "handle": handle, "registered": key}})
        if isinstance(data, LearnerErased):
            ref = (PASSPORTS, data.learner_id)
            passport = docs.get(ref) or _new_passport(data.learner_id)
            if passport.get("erased"):
                return NOTHING
            return Outcome(changes={ref: {**passport, "handle": None, "erased": True}})
        if isinstance(data, SkillClaimed | SkillUnclaimed):
            level = data.self_level if isinstance(data, SkillClaimed) else None
            return self._claim(docs, event, data.learner_id, data.skill, level)
        if isinstance(data, SciUpdated):
            return self._score(docs, event, data)
        if isinstance(data, EvidenceRecorded):
            return self._evidence(docs, data)
        if isinstance(data, RatersCalibrated):
            return _biases(docs, data)
        return NOTHING

    def _claim(
        self,
        docs: Mapping[DocRef, Doc | None],
        event: CloudEvent,
        learner: str,
        skill: str,
        level: str | None,
    ) -> Outcome:
        entry = _entry(docs, learner, skill)
        key = (stamp(event.time), event.id)
        if not _newer(key, entry["claim"]):
            return NOTHING  # an older or repeated claim/unclaim
        new = {**entry, "claim": {"self_level": level, "at": key[0], "event": key[1]}}
        return _changed(docs, learner, skill, entry, new)

    def _score(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent, data: SciUpdated) -> Outcome:
        entry = _entry(docs, data.learner_id, data.skill)
        key = (data.model, data.revision, data.calibration, stamp(data.as_of), event.id)
        if not _newer_score(key, entry["score"]):
            return NOTHING  # not later than the score we hold
        score: Doc = {p: getattr(data, p) for p in PARTS}
        last = data.last_evidence_at
        score.update(
            tier=data.tier,
            model=key[0],
            revision=key[1],
            calibration=key[2],
            at=key[3],
            event=key[4],
            last_evidence_at=None if last is None else stamp(last),
        )
        if data.band is not None:
            score["band"] = data.band
        if data.rubric:
            score["rubric"] = dict(sorted(data.rubric.items()))
        return _changed(docs, data.learner_id, data.skill, entry, {**entry, "score": score})

    def _evidence(self, docs: Mapping[DocRef, Doc | None], data: EvidenceRecorded) -> Outcome:
        trail_ref = (TRAIL, trail_key(data.learner_id, data.occurred_at, data.evidence_id))
        item = trail_item(data)
        if docs.get((EVIDENCE_SEEN, data.evidence_id)) is not None:
            # Counted already. An item folded before the trail existed gets its trail item when
            # the log is folded again over the same store; a copy of a trailed item changes nothing.
            if item is None or docs.get(trail_ref) is not None:
                return NOTHING
            return Outcome(changes={trail_ref: item})
        entry = _entry(docs, data.learner_id, data.skill)
        specialties = dict(entry["specialties"])
        if data.specialty is not None:
            specialties[data.specialty] = specialties.get(data.specialty, 0) + 1
        when = stamp(data.occurred_at)
        last = entry["last_evidence_at"]
        new = {
            **entry,
            "sessions": sorted({*entry["sessions"], data.session_id}),
            "specialties": specialties,
            "evidence": entry["evidence"] + 1,
            "last_evidence_at": when if last is None or when > last else last,
        }
        outcome = _changed(docs, data.learner_id, data.skill, entry, new)
        changes = dict(outcome.changes)
        changes[(EVIDENCE_SEEN, data.evidence_id)] = {
            "learner_id": data.learner_id,
            "skill": data.skill,
            "session_id": data.session_id,
        }
        if item is not None:
            changes[trail_ref] = item
        marker = (SKILL_SESSIONS, session_key(data.skill, data.session_id))
        if docs.get(marker) is None:
            changes[marker] = {"skill": data.skill, "session_id": data.session_id}
            stats = changes[(SKILL_STATS, data.skill)]
            assert stats is not None
            changes[(SKILL_STATS, data.skill)] = {
                **stats,
                "sessions_completed": stats["sessions_completed"] + 1,
            }
        return Outcome(changes=changes)


def _biases(docs: Mapping[DocRef, Doc | None], data: RatersCalibrated) -> Outcome:
    """Each rater's bias, where this calibration is newer than the one held for them."""
    version = (data.ratings, data.digest)
    changes: dict[DocRef, Doc | None] = {}
    for rater, bias in sorted(data.bias.items()):
        ref = (RATER_BIAS, bias_key(data.skill, rater))
        held = docs.get(ref)
        if held is None or version > (int(held["ratings"]), str(held["digest"])):
            changes[ref] = {"bias": float(bias), "ratings": data.ratings, "digest": data.digest}
    return Outcome(changes=changes) if changes else NOTHING


def _new_passport(learner_id: str) -> Doc:
    return {"learner_id": learner_id, "handle": None, "registered": None, "skills": {}}


def _entry(docs: Mapping[DocRef, Doc | None], learner: str, skill: str) -> Doc:
    passport = docs.get((PASSPORTS, learner))
    found = passport["skills"].get(skill) if passport else None
    return found if found is not None else empty_entry()


def _changed(
    docs: Mapping[DocRef, Doc | None], learner: str, skill: str, old: Mapping[str, Any], new: Doc
) -> Outcome:
    """The passport with the new entry, and the skill's stats moved from old to new."""
    passport = docs.get((PASSPORTS, learner)) or _new_passport(learner)
    updated = {**passport, "skills": {**passport["skills"], skill: new}}
    stats = restat(docs.get((SKILL_STATS, skill)), old, new)
    return Outcome(changes={(PASSPORTS, learner): updated, (SKILL_STATS, skill): stats})


# Views: how the API renders the read model.


def shown_parts(entry: Mapping[str, Any], as_of: datetime | None) -> tuple[int, dict[str, float]]:
    """``figures`` with Freshness (and the SCI with it) decayed to ``as_of``; stored if ``None``.

    The tier is shown as sci set it: it is earned by evidence and does not lapse by itself.
    """
    tier, parts = figures(entry)
    score = entry.get("score")
    last = score.get("last_evidence_at") if score is not None else None
    if as_of is None or last is None:
        return tier, parts
    sci, freshness = decayed(parts["sci"], parts["freshness"], datetime.fromisoformat(last), as_of)
    return tier, {**parts, "sci": sci, "freshness": freshness}


def skill_view(skill: str, entry: Mapping[str, Any], as_of: datetime | None = None) -> Doc:
    """One skill of a passport as shown; ``scored`` says whether sci has sent a score yet (the
    JSON passport leaves it out: there a skill without a score shows zeros)."""
    tier, parts = shown_parts(entry, as_of)
    claim = entry.get("claim")
    score = entry.get("score")
    return {
        "skill": skill,
        "scored": score is not None,
        **parts,
        # half-width of the SCI's 90% band (None: no score yet, or one sent before bands)
        "band": score.get("band") if score is not None else None,
        # level 1..5 per rubric dimension (empty: no score yet, or one sent before depth per dimension)
        "rubric": dict(score.get("rubric", {})) if score is not None else {},
        "tier": tier,
        "sessions": len(entry["sessions"]),
        "specialties": dict(sorted(entry["specialties"].items())),
        "last_evidence_at": entry["last_evidence_at"],
        "self_level": claim["self_level"] if claim else None,
    }


def passport_skills(passport: Mapping[str, Any] | None, as_of: datetime | None = None) -> list[Doc]:
    """Active skills as of ``as_of`` (as stored if ``None``), highest SCI first, then by skill id."""
    if passport is None:
        return []
    views = [skill_view(s, e, as_of) for s, e in passport["skills"].items() if is_active(e)]
    return sorted(views, key=lambda v: (-v["sci"], v["skill"]))


def skill_figures(stats: Mapping[str, Any] | None) -> Doc:
    """Live figures of a skill page; averages are ``None`` while no learner verifies it.

    Averages are of each learner's latest SciUpdated, not decayed at read time: they are exact
    sums kept by the fold, which a per-read decay of every learner would break.
    """
    s = stats or empty_stats()
    n = s["learners"]
    averages = {f"avg_{p}": (round(s["centi"][p] / 100 / n, 2) if n else None) for p in PARTS}
    return {
        "learners_verifying": n,
        "sessions_completed": s["sessions_completed"],
        "tier_distribution": {t: s["tiers"][t] for t in TIERS},
        **averages,
    }
