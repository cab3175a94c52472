"""The encoded size of the events one rated session puts in the log (for the storage estimate).

The events are built as the services build them (``shared.events.envelope.new_event``, ids from
the services' own id rules, derived events caused by their cause) and measured with
``shared.events.envelope.encode``, the bytes the outbox stores and the relay publishes as the
record's value. Learner and ticket ids are UUIDs (36 characters, as a production identity
provider's subjects would be; the demo's ``sim-…`` ids are shorter). A record also carries its
key (the topic's key: a UUID or a skill id) and the ``content-type`` header; Kafka's own
per-record and per-batch framing is left to the arithmetic in ``docs/scaling.md``.

Also: how well a producer batch of them compresses (gzip, one of Kafka's codecs; the services'
producers set none today), and the documents each service's fold keeps for one session (its
own projection, folded in memory with ``fold_events``), key plus JSON, per collection.
"""

from __future__ import annotations

import json
import random
import uuid
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from services.evidence.domain import evidence_id_for
from services.evidence.projection import EvidenceProjection
from services.matching.domain import match_id_for
from services.matching.projection import MatchingProjection
from services.passport.projection import PassportProjection
from services.sci.projection import SciProjection
from services.sessions.domain import rating_id_for
from services.sessions.projection import SessionsProjection
from shared.catalog import get_catalog
from shared.events.envelope import CloudEvent, deterministic_id, encode, new_event
from shared.events.payloads import (
    RATERS_PER_PART,
    EvidenceRecorded,
    MatchedTicket,
    MatchFound,
    MatchRequested,
    RatersCalibrated,
    RatingSubmitted,
    SciUpdated,
    SessionCompleted,
    SessionConfirmed,
    SessionScheduled,
    SessionStarted,
    TierChanged,
)
from shared.projection import fold_events
from shared.projection.fold import Projection

SKILL = "machine-learning"
SCORES = {
    "model-selection": 4,
    "feature-engineering": 3,
    "evaluation-metrics": 5,
    "generalization": 4,
    "deployment": 3,
}
START = datetime(2027, 3, 1, 9, 30, 12, 345678, tzinfo=UTC)
BATCH_BYTES = 16384  # aiokafka's max_batch_size default
HEADER = len("content-type") + len("application/cloudevents+json")


def session_events(rng: random.Random | None = None) -> dict[str, list[CloudEvent]]:
    """Every event of one matched session, completed by one participant and confirmed by the
    other, rated both ways, by type name; with
    ``rng``, its times, levels, scores and score parts drawn (else fixed, typical values)."""
    draw = rng or random.Random(0)
    t0 = START + timedelta(seconds=draw.uniform(0, 86400) if rng else 0.0)
    la, lb = (round(draw.uniform(1, 4), 2), round(draw.uniform(1, 4), 2)) if rng else (2.37, 2.51)
    scores = [{d: draw.randint(2, 5) for d in SCORES} if rng else SCORES for _ in range(2)]
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    ta, tb = str(uuid.uuid4()), str(uuid.uuid4())
    match_id = match_id_for(ta, tb)
    requests = [
        MatchRequested(
            ticket_id=t,
            learner_id=learner,
            skill=SKILL,
            specialty="nlp",
            format="build",
            level=level,
            requested_at=t0,
        )
        for t, learner, level in ((ta, a, la), (tb, b, lb))
    ]
    found = MatchFound(
        match_id=match_id,
        skill=SKILL,
        specialty="nlp",
        format="build",
        tickets=(
            MatchedTicket(ticket_id=ta, learner_id=a, level=la),
            MatchedTicket(ticket_id=tb, learner_id=b, level=lb),
        ),
        level_gap=round(abs(la - lb), 4),
        waited_ms=draw.randint(0, 30000) if rng else 4211,
    )
    out: dict[str, list[CloudEvent]] = {
        "MatchRequested": [new_event(r, source="matching", time=t0) for r in requests]
    }
    cause = new_event(found, source="matching", time=t0 + timedelta(seconds=4))
    out["MatchFound"] = [cause]
    session = [
        SessionScheduled(
            session_id=match_id,
            match_id=match_id,
            skill=SKILL,
            specialty="nlp",
            format="build",
            participants=(a, b),
        ),
        SessionStarted(session_id=match_id, started_by=a),
        SessionCompleted(
            session_id=match_id,
            completed_by=b,
            duration_s=draw.randint(900, 3600) if rng else 2710,
            confirm_by=t0 + timedelta(minutes=50, hours=48),
        ),
        SessionConfirmed(session_id=match_id, confirmed_by=a),
    ]
    for p in session:
        out[type(p).__name__] = [
            new_event(p, source="sessions", time=t0 + timedelta(minutes=50), cause=cause)
        ]
    for (rater, ratee), given in zip(((a, b), (b, a)), scores, strict=True):
        rid = rating_id_for(match_id, rater)
        rating = new_event(
            RatingSubmitted(
                rating_id=rid,
                session_id=match_id,
                rater_id=rater,
                ratee_id=ratee,
                skill=SKILL,
                specialty="nlp",
                scores=given,
            ),
            source="sessions",
            time=t0 + timedelta(minutes=52),
        )
        evidence = new_event(
            EvidenceRecorded(
                evidence_id=evidence_id_for(rid),
                learner_id=ratee,
                skill=SKILL,
                specialty="nlp",
                session_id=match_id,
                rater_id=rater,
                scores=given,
                format="build",
                occurred_at=rating.time,
            ),
            source="evidence",
            time=rating.time,
            id=deterministic_id("evidence", rating.id),
            cause=rating,
        )
        practice, proof, reliability = (round(draw.uniform(0, m), 2) for m in (25, 40, 20))
        score = SciUpdated(
            learner_id=ratee,
            skill=SKILL,
            sci=63.42 if rng is None else round(practice + proof + reliability + 15.0, 2),
            practice=17.34 if rng is None else practice,
            proof=21.87 if rng is None else proof,
            reliability=14.21 if rng is None else reliability,
            freshness=10.0 if rng is None else 15.0,
            tier=3,
            sessions=8,
            as_of=rating.time,
            revision=8,
            calibration=7_214_332,
            model=3,
            last_evidence_at=rating.time,
            band=8.73,
            rubric={d: round(min(5.0, 1.0 + 3.9 * proof / 40 + 0.1 * (v - 2)), 2) for d, v in given.items()},
        )
        updated = new_event(
            score, source="sci", time=rating.time, id=deterministic_id("sci", evidence.id), cause=evidence
        )
        tier = TierChanged(learner_id=ratee, skill=SKILL, from_tier=2, to_tier=3, as_of=rating.time)
        for name, event in (
            ("RatingSubmitted", rating),
            ("EvidenceRecorded", evidence),
            ("SciUpdated", updated),
            ("TierChanged", new_event(tier, source="sci", time=rating.time, cause=evidence)),
        ):
            out.setdefault(name, []).append(event)
    return out


def calibration_part(raters: int = RATERS_PER_PART) -> CloudEvent:
    """One full RatersCalibrated part: ``raters`` raters' bias, weight and severity on every
    rubric dimension (UUID ids)."""
    ids = sorted(str(uuid.uuid4()) for _ in range(raters))
    part = RatersCalibrated(
        skill=SKILL,
        version="pg1-link-v3",
        digest="17b6aac6502b622a",
        ratings=7_214_332,
        part=0,
        parts=500,
        bias={r: 0.123456789012345 for r in ids},
        weight={r: 4.56789012345678 for r in ids},
        default_weight=3.2109876543210,
        prior=(0.56789012345678, 1.5),
        senior=ids,
        severity={r: dict.fromkeys(SCORES, -0.123) for r in ids},
        rubric_prior=1.766,
    )
    return new_event(part, source="sci", id=deterministic_id("sci-raters", SKILL, "17b6aac6502b622a", "0"))


#: the order the log gives one session's events (the folds take them in this order)
LOG_ORDER = (
    "MatchRequested",
    "MatchFound",
    "SessionScheduled",
    "SessionStarted",
    "SessionCompleted",
    "SessionConfirmed",
    "RatingSubmitted",
    "EvidenceRecorded",
    "SciUpdated",
)


def gzip_ratio(sessions: int = 200, batch_bytes: int = BATCH_BYTES) -> float:
    """Raw over gzip-compressed bytes of ``sessions`` sessions' events: each topic's records,
    shuffled (sessions interleave in a partition), cut into producer batches of up to
    ``batch_bytes`` (aiokafka's default), each compressed alone as Kafka compresses a batch."""
    by_topic: dict[str, list[bytes]] = {}
    rng = random.Random(7)
    for _ in range(sessions):
        for group in session_events(rng).values():
            for event in group:
                by_topic.setdefault(event.topic, []).append(encode(event))
    raw = packed = 0
    for values in by_topic.values():
        rng.shuffle(values)
        batch: list[bytes] = []
        for value in [*values, b""]:
            if batch and (not value or sum(map(len, batch)) + len(value) > batch_bytes):
                packed += len(zlib.compress(b"".join(batch), 6))
                batch = []
            if value:
                raw += len(value)
                batch.append(value)
    return raw / packed


def _documents(projection: Projection, log: Iterable[CloudEvent]) -> dict[str, dict[str, int]]:
    docs, _ = fold_events(projection, log)
    found: dict[str, dict[str, int]] = {}
    for (collection, key), doc in docs.items():
        held = found.setdefault(collection, {"documents": 0, "bytes": 0})
        held["documents"] += 1
        held["bytes"] += len(key) + len(json.dumps(doc))
    return found


def document_bytes() -> dict[str, dict[str, dict[str, int]]]:
    """Per service and collection, the documents its fold keeps for one rated session."""
    events = session_events()
    log = [e for name in LOG_ORDER for e in events[name]]
    catalog = get_catalog()
    projections: dict[str, Projection] = {
        "evidence": EvidenceProjection(catalog),
        "sci": SciProjection([s.id for s in catalog.skills]),
        "passport": PassportProjection(),
        "sessions": SessionsProjection(),
        "matching": MatchingProjection(),
    }
    return {name: _documents(projection, log) for name, projection in projections.items()}


def event_bytes() -> dict[str, Any]:
    """Encoded bytes per event type (value, and value + key + header), and per rating."""
    events = session_events()
    sizes = {name: len(encode(group[0])) for name, group in events.items()}
    record = {name: sizes[name] + len(group[0].key) + HEADER for name, group in events.items()}
    # A rated session: two requests, one MatchFound, the session's three events, then per
    # direction a rating, its evidence and a score (a tier change now and then, not counted).
    counted = [n for n in events if n != "TierChanged"]
    session_bytes = sum(record[n] * len(events[n]) for n in counted)
    part = calibration_part()
    return {
        "value": sizes,
        "record": record,
        "per_rating_record_bytes": round(session_bytes / 2),
        "raters_calibrated_part": {"raters": RATERS_PER_PART, "value": len(encode(part))},
        "gzip_ratio": round(gzip_ratio(), 2),
        "documents_per_session": document_bytes(),
    }
