"""Event payloads (the CloudEvents ``data``), named as past facts.

Ids only, never personal data: the log is kept forever. Every payload is frozen. A
reader ignores fields it does not know (a tolerant reader), so adding an optional field
is a compatible change that older consumers survive during a rolling deploy; every
field it does know is validated, so a malformed record is refused, not half-read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SelfLevel = Literal["beginner", "intermediate", "advanced", "expert"]
RubricScore = Annotated[int, Field(ge=1, le=5)]
Scores = dict[str, RubricScore]


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


# lemma.passport.v1 (key: learner_id)
class LearnerRegistered(Payload):
    """Written before handles left the log (it carries one in clear); folded as it always was,
    no longer written: ``LearnerJoined`` is."""

    learner_id: str
    handle: str


class LearnerJoined(Payload):
    """A learner registered. Their handle and display name stay in the passport's store
    (personal data, erasable), never in the log."""

    learner_id: str


class LearnerErased(Payload):
    """A learner had their personal data erased: the handle, display name and rating comments
    are gone from every store; their scores and the ratings they gave stay, anonymised."""

    learner_id: str


class SkillClaimed(Payload):
    learner_id: str
    skill: str
    self_level: SelfLevel


class SkillUnclaimed(Payload):
    learner_id: str
    skill: str


# lemma.matching.v1 (key: skill)
class MatchRequested(Payload):
    ticket_id: str
    learner_id: str
    skill: str
    specialty: str | None = None
    format: str | None = None
    level: float = Field(ge=0, le=5)
    #: When the learner started waiting; a requeued ticket keeps its original time.
    requested_at: datetime
    #: Set when the ticket puts a learner back in the queue because their partner did not show
    #: up: the match (and session) id that was abandoned.
    requeue_of: str | None = None


class MatchCancelled(Payload):
    ticket_id: str
    learner_id: str
    skill: str
    reason: str


class MatchExpired(Payload):
    ticket_id: str
    learner_id: str
    skill: str


class MatchedTicket(Payload):
    ticket_id: str
    learner_id: str
    level: float


class MatchFound(Payload):
    match_id: str
    skill: str
    specialty: str | None = None
    format: str | None = None
    tickets: tuple[MatchedTicket, MatchedTicket]
    level_gap: float = Field(ge=0)
    waited_ms: int = Field(ge=0)


# lemma.sessions.v1 (key: session_id)
class SessionScheduled(Payload):
    session_id: str
    match_id: str
    skill: str
    specialty: str | None = None
    format: str | None = None
    participants: tuple[str, str]


class SessionStarted(Payload):
    session_id: str
    started_by: str


class SessionCompleted(Payload):
    """A participant confirmed the session took place (the first confirmation)."""

    session_id: str
    completed_by: str
    duration_s: int = Field(ge=0)
    #: Until when the partner may dispute it. Set: the session counts (Practice, ratings) only
    #: once SessionConfirmed follows. Absent (logged before confirmations existed): it counts at once.
    confirm_by: datetime | None = None

    @property
    def counts_at_once(self) -> bool:
        """Whether this completion counts without a SessionConfirmed (an event of the old rule)."""
        return self.confirm_by is None


#: Why a participant abandons a session: codes, not free text (the log keeps no text about a person).
AbandonReason = Literal["partner-absent", "schedule-conflict", "technical-problem", "level-mismatch", "other"]
ABANDON_REASONS: frozenset[str] = frozenset(get_args(AbandonReason))


def abandon_code(reason: str) -> str:
    """``reason`` if it is an ``AbandonReason``, else ``other`` (the free text of older events)."""
    return reason if reason in ABANDON_REASONS else "other"


class SessionAbandoned(Payload):
    session_id: str
    abandoned_by: str
    #: An ``AbandonReason``. Events logged before codes carry the participant's free text: it is
    #: read as ``other``, so no fold or rebuild puts that text into a store again.
    reason: str
    no_show: str | None = None
    #: With ``no_show``: until when the accused may contest the claim. Set: the no-show costs
    #: them only once NoShowUpheld follows. Absent (logged before claims could be contested):
    #: the claim stands at once.
    contest_by: datetime | None = None

    @field_validator("reason")
    @classmethod
    def _a_code(cls, reason: str) -> str:
        return abandon_code(reason)

    @property
    def standing_no_show(self) -> str | None:
        """The learner this event alone counts as a no-show (an abandon of the old rule), if any."""
        return self.no_show if self.contest_by is None else None


#: Why a participant disputes a completion: codes, not free text (the log keeps no text about a person).
DisputeReason = Literal["did-not-happen", "ended-early", "partner-absent", "other"]
#: Why the accused contests a no-show claim.
ContestReason = Literal["was-present", "accuser-absent", "rescheduled", "other"]


class SessionConfirmed(Payload):
    """A completion now counts: the partner confirmed it too, or did not dispute it in time."""

    session_id: str
    #: The partner whose confirmation made it two; ``None``: the window closed undisputed.
    confirmed_by: str | None = None


class SessionDisputed(Payload):
    """The partner disputed the completion within the window: the session never counts."""

    session_id: str
    disputed_by: str
    reason: DisputeReason


class NoShowContested(Payload):
    """The learner named as a no-show contested the claim in time: it costs nobody anything."""

    session_id: str
    contested_by: str
    reason: ContestReason | None = None


class NoShowUpheld(Payload):
    """A no-show claim went uncontested through its window: it counts against ``no_show``."""

    session_id: str
    no_show: str
    claimed_by: str


class RatingSubmitted(Payload):
    rating_id: str
    session_id: str
    rater_id: str
    ratee_id: str
    skill: str
    specialty: str | None = None
    scores: Scores
    comment: str | None = Field(default=None, max_length=2000)


# lemma.evidence.v1 (key: learner_id)
class EvidenceRecorded(Payload):
    evidence_id: str
    learner_id: str
    skill: str
    specialty: str | None = None
    session_id: str
    rater_id: str
    scores: Scores
    format: str | None = None
    occurred_at: datetime


# lemma.sci.v1 (key: learner_id)
class SciUpdated(Payload):
    learner_id: str
    skill: str
    sci: float = Field(ge=0, le=100)
    practice: float = Field(ge=0, le=25)
    proof: float = Field(ge=0, le=40)
    reliability: float = Field(ge=0, le=20)
    freshness: float = Field(ge=0, le=15)
    tier: int = Field(ge=1, le=4)
    sessions: int = Field(ge=0, default=0)
    as_of: datetime
    #: Grows with every fact folded into the score (evidence items plus no-shows).
    revision: int = Field(ge=0, default=0)
    #: The rater calibration the score used, as the number of ratings in the skill it was
    #: computed over (0: none yet). It only grows, so a reader keeps the update with the
    #: highest (model, revision, calibration, as_of, event id), whatever order updates arrive in.
    calibration: int = Field(ge=0, default=0)
    #: The version of the score model that computed it (0: before versions). It comes first in
    #: that order, so a new model's scores, announced after a rebuild at the same revision,
    #: replace the old model's.
    model: int = Field(ge=0, default=0)
    #: When the newest evidence happened: Freshness decays from here at read time, so a reader
    #: can show today's Freshness without a new event (see ``shared.freshness``).
    last_evidence_at: datetime | None = None
    #: Half-width of the 90% band around the SCI ("58 ± 14"; absent before bands existed). The
    #: tier was earned at the band's low end.
    band: float | None = Field(default=None, ge=0, le=100)
    #: The learner's level on each rubric dimension the ratings scored (dimension id -> 1..5: their
    #: overall level plus what their raters saw of that dimension, corrected for each rater's
    #: severity on it and shrunk while evidence is thin). Absent before depth per dimension existed.
    rubric: dict[str, Annotated[float, Field(ge=1, le=5)]] | None = None


class TierChanged(Payload):
    learner_id: str
    skill: str
    from_tier: int = Field(ge=1, le=4, alias="from")
    to_tier: int = Field(ge=1, le=4, alias="to")
    as_of: datetime

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


#: The most raters one RatersCalibrated part carries, so no record grows past broker limits.
RATERS_PER_PART = 2000


# lemma.sci.v1 (key: skill)
class RatersCalibrated(Payload):
    """Part ``part`` of ``parts`` of one rater calibration in ``skill`` (named by ``digest``).

    ``bias`` maps a rater id to their leniency on the 1..5 scale (raters sorted by id, at most
    ``RATERS_PER_PART`` per part). A rating's calibrated value is its mean rubric score less its
    rater's bias, held to 1..5. ``ratings`` (the ratings the calibration covers) only grows, so a
    reader keeps, per rater, the bias of the greatest (``ratings``, ``digest``).
    """

    skill: str
    version: str
    digest: str
    ratings: int = Field(ge=0)
    part: int = Field(ge=0)
    parts: int = Field(ge=1)
    bias: dict[str, Annotated[float, Field(allow_inf_nan=False)]]  # NaN or inf: refused
    #: The rest of what the score used under this calibration, so a reader of the log can score
    #: as the service did then (an audit as of a past time): each rater's weight (the raters of
    #: this part), the weight of a rater it never saw, the Proof prior (mean on 0..1, weight in
    #: pseudo-ratings) and this part's share of the senior learners (tier 3 or 4 when it was
    #: made, sorted). Absent on parts logged before the calibration travelled whole.
    weight: dict[str, Annotated[float, Field(allow_inf_nan=False)]] | None = None
    default_weight: Annotated[float, Field(allow_inf_nan=False)] | None = None
    prior: tuple[float, float] | None = None
    senior: list[str] = Field(default_factory=list)
    #: This part's share of the pairs of learners suspected of rating each other up (each pair
    #: sorted, the list sorted): their ratings of each other weigh a twentieth. Absent before.
    collusive: list[tuple[str, str]] = Field(default_factory=list)
    #: This part's raters' severity per rubric dimension (rater -> dimension -> how far above their
    #: own mean they score it; raters without one left out), and the pseudo-ratings a learner's
    #: depth on a dimension is shrunk by. Absent before depth per dimension existed.
    severity: dict[str, dict[str, Annotated[float, Field(allow_inf_nan=False)]]] = Field(default_factory=dict)
    rubric_prior: Annotated[float, Field(allow_inf_nan=False, ge=0)] | None = None

    @model_validator(mode="after")
    def _part_of_parts(self) -> RatersCalibrated:
        if self.part >= self.parts:
            raise ValueError(f"part {self.part} is not one of {self.parts} parts")
        return self


# lemma.dlq.v1 (key: the original key)
DEAD_LETTER_VALUE_LIMIT = 64 * 1024


class DeadLettered(Payload):
    consumer: str
    error: str
    topic: str
    partition: int
    offset: int
    key: str | None = None
    #: The original record value as UTF-8 (undecodable bytes replaced), at most
    #: ``DEAD_LETTER_VALUE_LIMIT`` characters so a dead letter always fits in a record.
    value: str
    value_size: int = Field(ge=0, default=0)  # the original value's size in bytes


# lemma.ops.v1 (key: the projection)
OperatorAction = Literal["resume", "redrive", "replay", "switch", "drop"]


class OperatorActed(Payload):
    """An operator did something to a projection: who, what, and what came of it. Kept forever,
    like every event, so what was done to the scores can be audited."""

    action: OperatorAction
    service: str
    projection: str
    by: str  # the operator's token subject
    #: what it was done to and what came of it, e.g. {"partitions": [...]} or {"folded": 3}
    detail: dict[str, Any] = Field(default_factory=dict)
