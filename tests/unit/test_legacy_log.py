"""A log written before confirmations folds as it did: a completion by one participant counts at
once, ratings after it become evidence as they come, a no-show claim costs the accused at once.

The simulated population's log (``bench.replay_log``) in its legacy form is folded by the real
runtime into in-memory stores, as a rebuild does, and the documents' bytes are compared with
digests taken by folding the same log with the code from before confirmations (commit 0530467).
A change to the simulator changes the log and so the digests: take them again at that commit
with the same fold (and the generator's legacy form). What the sci documents have kept since
(each rating's rubric scores and the residual sums of the depth per dimension) is taken out
before the digest, so every byte the old fold wrote is still compared. The new form of the same
population's life (both confirm, claims upheld after their window) records every rating and
counts every no-show.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.replay_log import log_events
from services.evidence.projection import EVIDENCE_IDS, EvidenceProjection
from services.sci.projection import SCORES, SciProjection
from shared.catalog import get_catalog
from shared.events import encode
from shared.events.envelope import CloudEvent
from shared.events.payloads import EvidenceRecorded, NoShowUpheld, RatingSubmitted, SessionAbandoned
from shared.projection.fold import Projection
from shared.projection.runtime import ProjectionRuntime
from shared.store.sqlite import SqliteStore
from tests.support.records import Rec

SKILLS = [s.id for s in get_catalog().skills]
SCI_TOPICS = {"lemma.sessions.v1", "lemma.evidence.v1", "lemma.passport.v1"}
#: sha256 of the stores' rows (collection, key, document) folded by the code before confirmations
BEFORE = {
    "evidence": "6ef1101aadeff91b6eac636e35d49c84f2adc24d6f11dc4588a4b0fc4d8f065d",
    "sci": "b1e232e20809b12ea251d41c03799f1284c84b4a77a1489a665aa66854c73b78",
}


def records(events: list[CloudEvent], topics: set[str]) -> list[Rec]:
    out: list[Rec] = []
    offsets: dict[tuple[str, int], int] = {}
    for event in events:
        if event.topic not in topics:
            continue
        key = event.key.encode()
        at = (event.topic, zlib.crc32(key) % 3)
        offsets[at] = offsets.get(at, -1) + 1
        out.append(Rec(event.topic, at[1], offsets[at], key, encode(event)))
    return out


async def folded(projection: Projection, recs: list[Rec]) -> SqliteStore:
    store = SqliteStore(":memory:")
    runtime = ProjectionRuntime(projection, store, service="test", emit=False)
    for start in range(0, len(recs), 500):
        await runtime.handle(recs[start : start + 500])
    return store


def without_rubric(doc: dict[str, Any]) -> dict[str, Any]:
    """A sci document as the fold wrote it before it kept rubric scores."""
    doc.pop("rubric", None)
    for item in doc.get("items", {}).values():
        item.pop("scores", None)
    return doc


def digest(store: SqliteStore, strip: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> str:
    rows = list(
        store._db.execute(  # the bytes as written, without the runtime's own bookkeeping
            "SELECT collection, key, doc FROM docs WHERE collection NOT LIKE '\\_%' ESCAPE '\\' "
            "ORDER BY collection, key"
        )
    )
    if strip is not None:  # the store writes ``json.dumps`` text: the rest keeps its bytes
        rows = [(c, k, json.dumps(strip(json.loads(d)))) for c, k, d in rows]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


async def test_a_log_from_before_confirmations_folds_to_the_same_bytes() -> None:
    events = log_events(6000, 11, legacy=True)
    assert not any(getattr(e.data, "confirm_by", None) or getattr(e.data, "contest_by", None) for e in events)
    evidence = await folded(EvidenceProjection(get_catalog()), records(events, {"lemma.sessions.v1"}))
    sci = await folded(SciProjection(SKILLS), records(events, SCI_TOPICS))
    assert {"evidence": digest(evidence), "sci": digest(sci, without_rubric)} == BEFORE
    kept = [doc for _, doc in await sci.scan(SCORES, limit=10**6) if doc["raters"]]
    assert kept and all(doc["rubric"].keys() == doc["raters"].keys() for doc in kept)
    # what the bytes say: every rating became evidence, every named no-show counts
    ratings = sum(isinstance(e.data, RatingSubmitted) for e in events)
    assert await evidence.count(EVIDENCE_IDS) == ratings
    no_shows = sum(isinstance(e.data, SessionAbandoned) and e.data.no_show is not None for e in events)
    assert no_shows and sum(doc["no_shows"] for _, doc in await sci.scan(SCORES, limit=10**6)) == no_shows


async def test_the_same_life_logged_with_confirmations_counts_every_rating_and_upheld_no_show() -> None:
    events = log_events(6000, 11)
    types = Counter(type(e.data).__name__ for e in events)
    assert types["SessionConfirmed"] and types["NoShowUpheld"]
    evidence = await folded(EvidenceProjection(get_catalog()), records(events, {"lemma.sessions.v1"}))
    rated = {e.data.rating_id for e in events if isinstance(e.data, RatingSubmitted)}
    recorded = {e.data.evidence_id for e in events if isinstance(e.data, EvidenceRecorded)}
    assert await evidence.count(EVIDENCE_IDS) == len(rated)
    assert len(rated) - 1 <= len(recorded) <= len(rated)  # the cut may fall between a rating and its evidence
    sci = await folded(SciProjection(SKILLS), records(events, SCI_TOPICS))
    upheld = sum(isinstance(e.data, NoShowUpheld) for e in events)
    assert sum(doc["no_shows"] for _, doc in await sci.scan(SCORES, limit=10**6)) == upheld
