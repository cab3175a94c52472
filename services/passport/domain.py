"""Passport rules (pure): registering a learner, claiming skills, joining the waitlist.

The write model is three document collections:

- ``learners``: learner_id -> {learner_id, handle, display_name, claims: {skill: self_level},
  registered_at}. The display name lives only here, never in an event.
- ``handles``: handle -> {learner_id}; one document per handle makes handles unique.
- ``waitlist``: normalised email -> {email, skills, joined_at}. Emails never leave the store.

Each function looks at the current documents and returns a ``Decision`` (documents to
write, events to publish) or raises ``Refused`` with the HTTP status it maps to.

``decayed`` is the read-time rule: a passport shows Freshness (and so the SCI) as of the
request, from the last ``SciUpdated``, without a new event arriving. ``calibrated`` is the
evidence trail's: a rating less its rater's bias (from ``RatersCalibrated``), held to 1..5.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.errors import Refused
from shared.events.payloads import LearnerRegistered, Payload, SelfLevel, SkillClaimed, SkillUnclaimed
from shared.freshness import freshness_points

Doc = dict[str, Any]
DocRef = tuple[str, str]

LEARNERS = "learners"
HANDLES = "handles"
WAITLIST = "waitlist"

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
    if existing is not None:
        raise Refused(409, f"learner {learner_id} is already registered as {existing['handle']!r}")
    if handle_owner is not None:
        raise Refused(409, f"handle {handle!r} is taken")
    learner = {
        "learner_id": learner_id,
        "handle": handle,
        "display_name": name,
        "claims": {},
        "registered_at": now.isoformat(),
    }
    return Decision(
        docs={(LEARNERS, learner_id): learner, (HANDLES, handle): {"learner_id": learner_id}},
        events=(LearnerRegistered(learner_id=learner_id, handle=handle),),
    )


def claim(learner: Doc | None, learner_id: str, skill: str, self_level: SelfLevel) -> Decision:
    """Claim a skill at a self-declared level; claiming it again at the same level changes nothing."""
    if learner is None:
        raise Refused(404, f"learner {learner_id} is not registered")
    claims: dict[str, str] = learner.get("claims", {})
    if claims.get(skill) == self_level:
        return Decision()
    updated = {**learner, "claims": {**claims, skill: self_level}}
    return Decision(
        docs={(LEARNERS, learner_id): updated},
        events=(SkillClaimed(learner_id=learner_id, skill=skill, self_level=self_level),),
    )


def unclaim(learner: Doc | None, learner_id: str, skill: str) -> Decision:
    if learner is None:
        raise Refused(404, f"learner {learner_id} is not registered")
    claims: dict[str, str] = learner.get("claims", {})
    if skill not in claims:
        raise Refused(404, f"learner {learner_id} has not claimed {skill!r}")
    rest = {k: v for k, v in claims.items() if k != skill}
    return Decision(
        docs={(LEARNERS, learner_id): {**learner, "claims": rest}},
        events=(SkillUnclaimed(learner_id=learner_id, skill=skill),),
    )


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
