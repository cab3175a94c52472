"""The levels fold (pure): a learner's level in a skill, from passport claims and SCI updates.

One ``levels`` document per ``f"{learner_id}/{skill}"``. Each source keeps only its newest
fact: the claim (SkillClaimed or SkillUnclaimed) with the greatest (event time, event id),
the SciUpdated with the greatest (revision, calibration, as_of, event id). Both are maxima, so
the document is the same whatever the order of delivery and however often an event is delivered.
The revision comes first because sci stamps updates with a max as-of, so two updates can
share one; the revision grows with every fact sci folded, so it tells the newer score. At one
revision, the calibration (ratings in the skill the rater calibration used; it only grows) tells
a rescore under a newer calibration from an older one, whatever their as_of.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.matching.domain import LEVELS, level_from, level_key, stamp
from shared.events.envelope import CloudEvent
from shared.events.payloads import SciUpdated, SkillClaimed, SkillUnclaimed
from shared.projection.fold import NOTHING, Doc, DocRef, Outcome


def _version(doc: Mapping[str, Any] | None, field: str) -> tuple[str, str]:
    if doc is None or doc.get(field) is None:
        return ("", "")
    at, event_id = doc[field]
    return (str(at), str(event_id))


def _sci_version(doc: Mapping[str, Any] | None) -> tuple[int, int, str, str]:
    """(revision, calibration, as_of, event id) of the held SCI.

    A version stored before revisions ([as_of, event id]) counts as revision 0, and one stored
    before calibrations ([revision, as_of, event id]) as calibration 0.
    """
    if doc is None or doc.get("sci_version") is None:
        return (-1, -1, "", "")
    held = list(doc["sci_version"])
    if len(held) == 2:
        held = [0, *held]
    if len(held) == 3:
        held = [held[0], 0, *held[1:]]
    revision, calibration, at, event_id = held
    return (int(revision), int(calibration), str(at), str(event_id))


def fold_level(doc: Mapping[str, Any] | None, event: CloudEvent) -> Doc | None:
    """The level document after ``event``; ``None`` when the event changes nothing."""
    data = event.data
    if not isinstance(data, SkillClaimed | SkillUnclaimed | SciUpdated):
        return None
    base: Doc = (
        dict(doc)
        if doc is not None
        else {
            "learner_id": data.learner_id,
            "skill": data.skill,
            "self_level": None,
            "claim_version": None,
            "sci": None,
            "sci_version": None,
            "level": None,
        }
    )
    if isinstance(data, SciUpdated):
        sci_version = (data.revision, data.calibration, stamp(data.as_of), event.id)
        if sci_version <= _sci_version(doc):
            return None  # an older or the same update
        base.update(sci=data.sci, sci_version=list(sci_version))
    else:
        version = (stamp(event.time), event.id)
        if version <= _version(doc, "claim_version"):
            return None
        self_level = data.self_level if isinstance(data, SkillClaimed) else None
        base.update(self_level=self_level, claim_version=list(version))
    base["level"] = level_from(base["self_level"], base["sci"])
    return base


class MatchingProjection:
    name = "matching"

    def refs(self, event: CloudEvent) -> Iterable[DocRef]:
        data = event.data
        if isinstance(data, SkillClaimed | SkillUnclaimed | SciUpdated):
            return [(LEVELS, level_key(data.learner_id, data.skill))]
        return []

    def apply(self, docs: Mapping[DocRef, Doc | None], event: CloudEvent) -> Outcome:
        refs = list(self.refs(event))
        if not refs:
            return NOTHING
        updated = fold_level(docs.get(refs[0]), event)
        return NOTHING if updated is None else Outcome(changes={refs[0]: updated})
