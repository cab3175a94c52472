"""Tier moves on the service's real path: a population's events folded one at a time through the
sci projection, with the calibration job recomputing the rater calibration as ratings grow.

The events, in time order: each rating as the EvidenceRecorded the evidence service publishes
(every session here is confirmed at once), and each no-show as the NoShowUpheld the sessions
service logs when the claim's window (``session_confirm_window_s``, 48 h) has passed
uncontested, after the SessionScheduled that names its skill. Each goes through
``SciProjection.apply`` (the fold, one event a batch: the finest steps a reader can see) on
documents kept in memory. After each rating the job's rule (``recalibration.due``) decides
whether to recalibrate: first at ``minimum`` ratings (``sci_calibration_min_ratings``, 100),
then when the set has grown by ``growth``. The service grows by 2% and also recalibrates on any
growth once its calibration is a minute old (in the simulator's time, nearly every rating): that
is too many calibrations to replay, so the bench uses a coarser step (``GROWTH``) and says so.
A recalibration runs the job's steps without its I/O: ``calibrate`` over every rating so far,
the seniors under the new calibration (``domain.seniors``), every learner with ratings
rescored (``projection.rescored``) and the calibration stored where the fold reads it.

What a reader sees is the tier of the latest SciUpdated for a learner (Claimed before any).
A move is the change of that tier on one event: a fold of a rating or no-show, or a
recalibration. ``TierPath`` counts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from services.sci import domain
from services.sci.calibration import Calibration, Rating, calibrate
from services.sci.documents import CALIBRATIONS, SCORES, facts_at
from services.sci.projection import SciProjection, rescored
from services.sci.recalibration import due
from shared.events.envelope import CloudEvent, new_event
from shared.events.payloads import EvidenceRecorded, Payload, SciUpdated, SessionScheduled
from shared.projection.fold import Doc, DocRef
from shared.settings import Settings
from sim.inprocess import evidence_events, no_show_events
from sim.population import SKILL, Population

GROWTH = 0.10  # the bench's recalibration step (the service's is 2%, see the module's docstring)
MINIMUM = int(Settings.model_fields["sci_calibration_min_ratings"].default)
CONFIRM_WINDOW = timedelta(seconds=float(Settings.model_fields["session_confirm_window_s"].default))
SOURCE = "sim"


@dataclass
class TierPath:
    """Tier moves along the replay."""

    learners: int = 0  # learners with any rating
    calibrations: int = 0
    moves: int = 0  # tier changes a reader saw
    recalibration_moves: int = 0  # of which a recalibration caused
    max_step: int = 0  # the largest change on one event
    max_recalibration_step: int = 0
    #: every move of more than one tier: (learner, tier before, tier after, on a recalibration)
    jumps: list[tuple[str, int, int, bool]] = field(default_factory=list)

    @property
    def jumped(self) -> set[str]:
        """The learners who moved by more than one tier on one event."""
        return {learner for learner, *_ in self.jumps}

    def figures(self) -> dict[str, float]:
        return {
            "max_tier_step": float(self.max_step),
            "tier_jump_share": len(self.jumped) / self.learners if self.learners else 0.0,
            "tier_moves": float(self.moves),
            "recalibration_moves": float(self.recalibration_moves),
            "max_recalibration_step": float(self.max_recalibration_step),
            "calibrations": float(self.calibrations),
        }


def events(population: Population) -> list[CloudEvent]:
    """The population's events for sci, in the order they happen (ties: schedules, then ratings,
    then no-shows, each by id)."""
    timed: list[tuple[datetime, int, str, Payload]] = []
    for evidence in evidence_events(population):
        timed.append((evidence.occurred_at, 1, evidence.evidence_id, evidence))
    sessions = {s.session_id: s for s in population.sessions}
    for upheld in no_show_events(population):
        session = sessions[upheld.session_id]
        scheduled = SessionScheduled(
            session_id=session.session_id,
            match_id=session.session_id,
            skill=SKILL,
            specialty=session.specialty,
            participants=session.participants,
        )
        timed.append((session.occurred_at, 0, session.session_id, scheduled))
        timed.append((session.occurred_at + CONFIRM_WINDOW, 2, session.session_id, upheld))
    timed.sort(key=lambda t: (t[0], t[1], t[2]))
    return [
        new_event(payload, source=SOURCE, time=at, id=f"{kind}-{key}") for at, kind, key, payload in timed
    ]


class Replay:
    """The sci projection and the calibration job over documents in memory."""

    def __init__(
        self,
        growth: float = GROWTH,
        minimum: int = MINIMUM,
        calibrator: Callable[[list[Rating]], Calibration] = calibrate,
    ) -> None:
        """``calibrator``: the service's ``calibrate`` (a test may hand in a calibration it chose)."""
        self.growth, self.minimum, self.calibrator = growth, minimum, calibrator
        self.projection = SciProjection([SKILL])
        self.docs: dict[DocRef, Doc] = {}
        self.ratings: list[Rating] = []
        self.correction = domain.UNCALIBRATED
        self.shown: dict[str, int] = {}
        self.path = TierPath()

    def fold(self, event: CloudEvent) -> None:
        """One event through the fold; a recalibration after it if the job's rule says so."""
        docs = {ref: self.docs.get(ref) for ref in self.projection.refs(event)}
        outcome = self.projection.apply(docs, event)
        for ref, doc in outcome.changes.items():
            if doc is None:
                self.docs.pop(ref, None)
            else:
                self.docs[ref] = doc
        self._saw(outcome.emit, recalibration=False)
        data = event.data
        if isinstance(data, EvidenceRecorded) and outcome.changes:
            item = domain.EvidenceItem.from_event(data)
            self.ratings.append(Rating(data.learner_id, data.rater_id, data.evidence_id, item.mean))
            age = None if self.correction.ratings == 0 else 0.0  # the age rule is left out (see above)
            if due(
                len(self.ratings),
                self.correction.ratings,
                minimum=self.minimum,
                age_s=age,
                growth=self.growth,
            ):
                self.recalibrate(event.time)

    def recalibrate(self, at: datetime) -> None:
        """The calibration job's steps: calibrate, find the seniors, rescore everyone, store."""
        new = self.calibrator(self.ratings).correction()
        ordered = [doc for (kind, _), doc in sorted(self.docs.items()) if kind == SCORES and doc["raters"]]
        new = replace(new, senior=domain.seniors((facts_at(doc) for doc in ordered), new))
        self._saw(rescored(ordered, self.correction, new), recalibration=True)
        self.docs[(CALIBRATIONS, SKILL)] = {**new.to_doc(), "calibrated_at": at.isoformat()}
        self.correction = new
        self.path.calibrations += 1

    def _saw(self, payloads: Iterable[Payload], *, recalibration: bool) -> None:
        path = self.path
        for payload in payloads:
            if not isinstance(payload, SciUpdated):
                continue
            learner = payload.learner_id
            before = self.shown.get(learner, domain.TIER_CLAIMED)
            step = abs(payload.tier - before)
            self.shown[learner] = payload.tier
            if not step:
                continue
            path.moves += 1
            path.max_step = max(path.max_step, step)
            if recalibration:
                path.recalibration_moves += 1
                path.max_recalibration_step = max(path.max_recalibration_step, step)
            if step > 1:
                path.jumps.append((learner, before, payload.tier, recalibration))
        path.learners = len(self.shown)


def tier_path(population: Population, growth: float = GROWTH, minimum: int = MINIMUM) -> TierPath:
    """Replay ``population`` through the fold and the calibration job; the tier moves seen."""
    replay = Replay(growth, minimum)
    for event in events(population):
        replay.fold(event)
    return replay.path
