"""Passport rules (pure): registering a learner, claiming skills, joining the waitlist.

The write model:

- ``learners``: learner_id -> {learner_id, handle, claims: {skill: self_level}, claimed:
  {skill: [stamp, event id]}, registered_at}, and ``handles``: handle -> {learner_id} (one
  document per handle makes handles unique). Both follow from the service's own events
  (``learner_applied``): the commands write what folding their events gives, and the fold
  writes it again, so ``lemma replay passport`` rebuilds them from the log. A claim is the
  last by (event time, event id), so folding an event the document is already past is a no-op.
- ``personal_profiles``: learner_id -> {display_name}, and ``personal_waitlist``: normalised
  email -> {email, skills, joined_at}: personal data, never in an event, so never rebuilt:
  one copy every version of the projection reads (``shared.projection.versions.PERSONAL``).

Each command function looks at the current documents and returns a ``Decision`` (documents
to write, events to publish) or raises ``Refused`` with the HTTP status it maps to.

``decayed`` is the read-time rule: a passport shows Freshness (and so the SCI) as of the
request, from the last ``SciUpdated``, without a new event arriving. ``calibrated`` is the
evidence trail's: a rating less its rater's bias (from ``RatersCalibrated``), held to 1..5.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.errors import Refused
from shared.events.payloads import LearnerRegistered, Payload, SelfLevel, SkillClaimed, SkillUnclaimed
from shared.freshness import freshness_points

Doc = dict[str, Any]
DocRef = tuple[str, str]

LEARNERS = "learners"
HANDLES = "handles"
PROFILES = "personal_profiles"
WAITLIST = "personal_waitlist"

HANDLE_PATTERN = r"^[a-z0-9_-]{3,30}$"
_HANDLE = re.compile(HANDLE_PATTERN)
# Simple and strict: a dot-atom local part, then dot-separated DNS labels and a 2+ letter TLD.
_EMAIL = re.compile(
    r"^[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)
MAX_EMAIL = 254


@dataclass(frozen=True)
class Decision:
    docs: dict[DocRef, Doc | None] = field(default_factory=dict)
    events: tuple[Payload, ...] = ()


def valid_handle(handle: str) -> bool:
    return bool(_HANDLE.fullmatch(handle))


def register(
    learner_id: str,
    handle: str,
    display_name: str,
    *,
    existing: Doc | None,
    handle_owner: Doc | None,
    now: datetime,
) -> Decision:
    """Register the token's learner under a unique handle."""
    if not valid_handle(handle):
        raise Refused(422, "handle must be 3-30 characters of a-z, 0-9, '-' and '_'")
    name = display_name.strip()
    if not name:
        raise Refused(422, "display_name must not be blank")
    if existing is not None and is_registered(existing):
        raise Refused(409, f"learner {learner_id} is already registered as {existing['handle']!r}")
    if handle_owner is not None:
        raise Refused(409, f"handle {handle!r} is taken")
    return Decision(
        docs={(PROFILES, learner_id): {"display_name": name}},
        events=(LearnerRegistered(learner_id=learner_id, handle=handle),),
    )


def claim(learner: Doc | None, learner_id: str, skill: str, self_level: SelfLevel) -> Decision:
    """Claim a skill at a self-declared level; claiming it again at the same level changes nothing."""
    if learner is None or not is_registered(learner):
        raise Refused(404, f"learner {learner_id} is not registered")
    claims: dict[str, str] = learner.get("claims", {})
    if claims.get(skill) == self_level:
        return Decision()
    return Decision(events=(SkillClaimed(learner_id=learner_id, skill=skill, self_level=self_level),))


def unclaim(learner: Doc | None, learner_id: str, skill: str) -> Decision:
    if learner is None or not is_registered(learner):
        raise Refused(404, f"learner {learner_id} is not registered")
    claims: dict[str, str] = learner.get("claims", {})
    if skill not in claims:
        raise Refused(404, f"learner {learner_id} has not claimed {skill!r}")
    return Decision(events=(SkillUnclaimed(learner_id=learner_id, skill=skill),))


def stamp(when: datetime) -> str:
    """Fixed-width UTC time, so stamps compare correctly as strings (naive means UTC)."""
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def learner_applied(learner: Doc | None, data: Payload, at: datetime, event_id: str) -> Doc | None:
    """The ``learners`` document after one of the learner's events, logged at ``at`` with id
    ``event_id``; ``None`` when it changes nothing. The earliest registration by (time, id)
    holds; a claim or unclaim counts if it is later than the last one of its skill held. So
    the document does not depend on the order or the copies of the events folded."""
    if not isinstance(data, LearnerRegistered | SkillClaimed | SkillUnclaimed):
        return None
    key = [stamp(at), event_id]
    doc = learner or {
        "learner_id": data.learner_id,
        "handle": None,
        "claims": {},
        "claimed": {},
        "registered_at": None,
    }
    if isinstance(data, LearnerRegistered):
        held = doc.get("registered")
        if doc["handle"] is not None and (held is None or key >= held):
            return None  # registered already (a document from before keys were kept: as it is)
        return {**doc, "handle": data.handle, "registered": key, "registered_at": at.isoformat()}
    claimed: dict[str, list[str]] = doc.get("claimed", {})
    last = claimed.get(data.skill)
    if last is not None and key <= last:
        return None
    claims = {k: v for k, v in doc.get("claims", {}).items() if k != data.skill}
    if isinstance(data, SkillClaimed):
        claims[data.skill] = data.self_level
    return {**doc, "claims": claims, "claimed": {**claimed, data.skill: key}}


def is_registered(learner: Doc | None) -> bool:
    """A ``learners`` document can hold claims whose registration is not folded yet."""
    return learner is not None and learner.get("handle") is not None


def handle_applied(owner: Doc | None, data: LearnerRegistered, at: datetime, event_id: str) -> Doc | None:
    """A handle belongs to the learner registered under it first, by (time, id)."""
    key = [stamp(at), event_id]
    held = None if owner is None else owner.get("registered")
    if owner is not None and (held is None or key >= held):
        return None
    return {"learner_id": data.learner_id, "registered": key}


def command_time(learner: Doc | None, now: datetime) -> datetime:
    """``now``, or just after the learner's last claim when the clock went back: a learner's
    events carry rising times, so the last by (time, id) is the last published."""
    held = [
        datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        for at, _ in (learner or {}).get("claimed", {}).values()
    ]
    last = max(held, default=None)
    return now if last is None or now > last else last + timedelta(microseconds=1)


def normalise_email(raw: str) -> str | None:
    """The canonical form of an email (trimmed, lower case), or ``None`` if it is not one."""
    email = raw.strip().lower()
    if len(email) > MAX_EMAIL or not _EMAIL.fullmatch(email):
        return None
    return email


def join_waitlist(existing: Doc | None, raw_email: str, skill: str | None, now: datetime) -> Decision:
    """Idempotent per email: a repeat only adds a skill of interest not yet recorded. No events."""
    email = normalise_email(raw_email)
    if email is None:
        raise Refused(422, "email is not a valid address")
    if existing is None:
        doc: Doc = {"email": email, "skills": [skill] if skill else [], "joined_at": now.isoformat()}
        return Decision(docs={(WAITLIST, email): doc})
    skills: list[str] = list(existing.get("skills", []))
    if skill is None or skill in skills:
        return Decision()
    return Decision(docs={(WAITLIST, email): {**existing, "skills": [*skills, skill]}})


def decayed(
    sci: float, freshness: float, last_evidence_at: datetime | None, as_of: datetime
) -> tuple[float, float]:
    """(sci, freshness) of a stored score as shown at ``as_of``.

    Freshness is recomputed from the newest evidence with sci's own rule
    (``shared.freshness``), rounded to 2 decimals like every part; the SCI moves by the same
    amount, so the parts still add up. The tier is not touched: sci decides it from evidence.
    A score without ``last_evidence_at`` (sent before the field existed) is shown as stored.
    """
    if last_evidence_at is None:
        return sci, freshness
    freshness_now = round(freshness_points(last_evidence_at, as_of), 2)
    return max(0.0, round(sci - freshness + freshness_now, 2)), freshness_now


RATING_MIN = 1.0
RATING_MAX = 5.0


def calibrated(rating: float, bias: float | None) -> float:
    """A rating (mean rubric score, 1..5) corrected for its rater's leniency: the rating less the
    rater's bias, held to 1..5 and rounded to 2 decimals; with no bias known, the rating itself
    (held and rounded alike)."""
    value = rating if bias is None else rating - bias
    return round(min(RATING_MAX, max(RATING_MIN, value)), 2)
