"""Passport rules (pure): registering a learner, claiming skills, joining the waitlist.

The write model:

- ``learners``: learner_id -> {learner_id, handle (None since handles left the log), joined,
  erased, claims: {skill: self_level}, claimed: {skill: [stamp, event id]}, registered_at}.
  It follows from the service's own events (``learner_applied``): the commands write what
  folding their events gives, and the fold writes it again, so ``lemma replay passport``
  rebuilds it from the log. A claim is the last by (event time, event id), so folding an
  event the document is already past is a no-op. ``handles``: handle -> {learner_id}, from
  the ``LearnerRegistered`` events written before handles left the log (one document per
  handle makes handles unique).
- ``personal_profiles``: learner_id -> {display_name, handle}, ``personal_handles``: handle ->
  {learner_id}, and ``personal_waitlist``: normalised email -> {email, skills, joined_at}:
  personal data, never in an event, so never rebuilt: one copy every version of the
  projection reads (``shared.projection.versions.PERSONAL``), and erasing it is a delete.
- ``personal_erasures``: learner_id -> {erased_at}: who erased their data. Not rebuilt either,
  so a rebuild folding an old ``LearnerRegistered`` of theirs leaves its handle out.

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
from shared.events.payloads import (
    LearnerErased,
    LearnerJoined,
    LearnerRegistered,
    Payload,
    SelfLevel,
    SkillClaimed,
    SkillUnclaimed,
)
from shared.freshness import freshness_points

Doc = dict[str, Any]
DocRef = tuple[str, str]

LEARNERS = "learners"
HANDLES = "handles"
PROFILES = "personal_profiles"
PERSONAL_HANDLES = "personal_handles"
WAITLIST = "personal_waitlist"
ERASURES = "personal_erasures"
#: What is shown where an erased learner's name was.
DELETED_LEARNER = "deleted learner"

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
    erased: Doc | None = None,
    now: datetime,
) -> Decision:
    """Register the token's learner under a unique handle. The handle and the display name are
    personal data: they go to the personal collections, the log only learns that the learner
    joined. ``handle_owner``: the handle's document, in either handle collection."""
    if not valid_handle(handle):
        raise Refused(422, "handle must be 3-30 characters of a-z, 0-9, '-' and '_'")
    name = display_name.strip()
    if not name:
        raise Refused(422, "display_name must not be blank")
    if erased is not None or (existing is not None and existing.get("erased")):
        raise Refused(410, f"learner {learner_id} erased their data; the account cannot be used again")
    if existing is not None and is_registered(existing):
        raise Refused(409, f"learner {learner_id} is already registered")
    if handle_owner is not None:
        raise Refused(409, f"handle {handle!r} is taken")
    return Decision(
        docs={
            (PROFILES, learner_id): {"display_name": name, "handle": handle},
            (PERSONAL_HANDLES, handle): {"learner_id": learner_id},
        },
        events=(LearnerJoined(learner_id=learner_id),),
    )


def erase(learner: Doc | None, learner_id: str, profile: Doc | None, now: datetime) -> Decision:
    """Erase a learner's personal data: the profile (display name, handle), the handle's
    documents (a handle from before handles left the log included), and an ``erasures`` mark
    so no rebuild brings an old handle back. Erasing twice changes nothing."""
    if learner is None or not (is_registered(learner) or learner.get("erased")):
        raise Refused(404, f"learner {learner_id} is not registered")
    if learner.get("erased"):
        return Decision()
    docs: dict[DocRef, Doc | None] = {
        (PROFILES, learner_id): None,
        (ERASURES, learner_id): {"erased_at": now.isoformat()},
    }
    if profile is not None and profile.get("handle"):
        docs[(PERSONAL_HANDLES, str(profile["handle"]))] = None
    if learner.get("handle"):
        docs[(HANDLES, str(learner["handle"]))] = None
    return Decision(docs=docs, events=(LearnerErased(learner_id=learner_id),))


def claim(learner: Doc | None, learner_id: str, skill: str, self_level: SelfLevel) -> Decision:
    """Claim a skill at a self-declared level; claiming it again at the same level changes nothing."""
    if learner is not None and learner.get("erased"):
        raise Refused(410, f"learner {learner_id} erased their data")
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


def learner_applied(
    learner: Doc | None, data: Payload, at: datetime, event_id: str, *, erased: bool = False
) -> Doc | None:
    """The ``learners`` document after one of the learner's events, logged at ``at`` with id
    ``event_id``; ``None`` when it changes nothing. The earliest registration by (time, id)
    holds; a claim or unclaim counts if it is later than the last one of its skill held. So
    the document does not depend on the order or the copies of the events folded. Once erased
    (``LearnerErased``, or ``erased``: the learner is in ``erasures``) it holds no handle."""
    if not isinstance(
        data, LearnerRegistered | LearnerJoined | LearnerErased | SkillClaimed | SkillUnclaimed
    ):
        return None
    key = [stamp(at), event_id]
    doc = learner or {
        "learner_id": data.learner_id,
        "handle": None,
        "claims": {},
        "claimed": {},
        "registered_at": None,
    }
    if isinstance(data, LearnerErased):
        if doc.get("erased"):
            return None
        return {**doc, "handle": None, "erased": True}
    if isinstance(data, LearnerRegistered | LearnerJoined):
        held = doc.get("registered")
        if is_registered(doc) and (held is None or key >= held):
            return None  # registered already (a document from before keys were kept: as it is)
        hidden = bool(erased or doc.get("erased"))
        handle = data.handle if isinstance(data, LearnerRegistered) and not hidden else None
        marks = {"joined": True} if isinstance(data, LearnerJoined) else {}
        if hidden:
            marks["erased"] = True
        return {**doc, **marks, "handle": handle, "registered": key, "registered_at": at.isoformat()}
    claimed: dict[str, list[str]] = doc.get("claimed", {})
    last = claimed.get(data.skill)
    if last is not None and key <= last:
        return None
    claims = {k: v for k, v in doc.get("claims", {}).items() if k != data.skill}
    if isinstance(data, SkillClaimed):
        claims[data.skill] = data.self_level
    return {**doc, "claims": claims, "claimed": {**claimed, data.skill: key}}


def is_registered(learner: Doc | None) -> bool:
    """A ``learners`` document can hold claims whose registration is not folded yet; an erased
    learner is no longer registered."""
    return (
        learner is not None
        and not learner.get("erased")
        and (learner.get("handle") is not None or bool(learner.get("joined")))
    )


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
