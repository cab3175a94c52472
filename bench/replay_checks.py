"""What ``bench.replay`` checks after measuring: the rebuilt stores equal the incremental folds,
document by document, and the live fold's coalesced announcements leave readers right.

Both stores are SQLite files written by ``SqliteStore`` (one JSON text per document), so
"equal" is the stored text, byte for byte, compared in SQL for every document of every
collection the projection wrote (the rebuilt one under its version's names).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.sci.domain import Correction
from services.sci.projection import CALIBRATIONS, SCORES, current_score, sci_updated
from shared.events.envelope import decode
from shared.events.payloads import SciUpdated, TierChanged
from shared.projection.verify import NOT_COMPARED
from shared.projection.versions import SHARED, namespace

SAMPLES = 5


@dataclass
class Comparison:
    """Per collection: documents only in the rebuilt version, only in the incremental fold, and
    in both with other contents; a few keys of each."""

    documents: int = 0
    only_rebuilt: dict[str, int] = field(default_factory=dict)
    only_incremental: dict[str, int] = field(default_factory=dict)
    differ: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not (
            any(self.only_rebuilt.values())
            or any(self.only_incremental.values())
            or any(self.differ.values())
        )

    def figures(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "equal": self.equal,
            "only_rebuilt": sum(self.only_rebuilt.values()),
            "only_incremental": sum(self.only_incremental.values()),
            "differ": sum(self.differ.values()),
        }


def _collections(conn: sqlite3.Connection, schema: str) -> list[str]:
    return [row[0] for row in conn.execute(f"SELECT DISTINCT collection FROM {schema}.docs")]


def compare_stores(
    rebuilt: Path, version: int, incremental: Path, ignore: Mapping[str, frozenset[str]] | None = None
) -> Comparison:
    """Compare version ``version`` of the store at ``rebuilt`` with version 1 of the store at
    ``incremental``; ``ignore``: per collection, fields that record when a job ran (compared
    without them, as JSON)."""
    out = Comparison()
    conn = sqlite3.connect(incremental)
    try:
        conn.execute("ATTACH DATABASE ? AS rebuilt", (str(rebuilt),))
        prefix = namespace("", version)
        names = {c for c in _collections(conn, "main") if c not in SHARED}
        names |= {c[len(prefix) :] for c in _collections(conn, "rebuilt") if c.startswith(prefix)}
        for name in sorted(names - NOT_COMPARED):
            ours, theirs = namespace(name, version), name
            out.documents += conn.execute(
                "SELECT COUNT(*) FROM rebuilt.docs WHERE collection=?", (ours,)
            ).fetchone()[0]
            skip = (ignore or {}).get(name, frozenset())
            missing = conn.execute(
                "SELECT key FROM rebuilt.docs r WHERE collection=? AND NOT EXISTS "
                "(SELECT 1 FROM main.docs m WHERE m.collection=? AND m.key=r.key)",
                (ours, theirs),
            ).fetchall()
            extra = conn.execute(
                "SELECT key FROM main.docs m WHERE collection=? AND NOT EXISTS "
                "(SELECT 1 FROM rebuilt.docs r WHERE r.collection=? AND r.key=m.key)",
                (theirs, ours),
            ).fetchall()
            pairs = conn.execute(
                "SELECT r.key, r.doc, m.doc FROM rebuilt.docs r JOIN main.docs m "
                "ON m.collection=? AND m.key=r.key WHERE r.collection=? AND r.doc != m.doc",
                (theirs, ours),
            ).fetchall()
            differ = [key for key, a, b in pairs if _without(a, skip) != _without(b, skip)]
            out.only_rebuilt[name], out.only_incremental[name], out.differ[name] = (
                len(missing),
                len(extra),
                len(differ),
            )
            out.samples += [f"{name}/{k}: only in the rebuilt version" for (k,) in missing[:SAMPLES]]
            out.samples += [f"{name}/{k}: only in the incremental fold" for (k,) in extra[:SAMPLES]]
            out.samples += [f"{name}/{k}: differs" for k in differ[:SAMPLES]]
    finally:
        conn.close()
    return out


def _without(text: str, fields: frozenset[str]) -> Any:
    if not fields:
        return text
    doc = json.loads(text)
    return {k: v for k, v in doc.items() if k not in fields}


@dataclass
class Announced:
    """The live sci fold's outbox against its final documents."""

    sci_updated: int = 0
    tier_changed: int = 0
    scores: int = 0  # score documents with ratings
    wrong: list[str] = field(default_factory=list)  # where a reader would hold another score

    def figures(self) -> dict[str, Any]:
        return {
            "sci_updated": self.sci_updated,
            "tier_changed": self.tier_changed,
            "scores": self.scores,
            "readers_right": not self.wrong,
        }


def check_announced(db: Path) -> Announced:
    """What a reader keeps of the outbox (per learner and skill the greatest (model, revision,
    calibration, as_of, id), as passport and matching do) must be the score of the final
    document under the skill's calibration, for every score document with ratings."""
    out = Announced()
    held: dict[tuple[str, str], tuple[tuple[Any, ...], SciUpdated]] = {}
    conn = sqlite3.connect(db)
    try:
        for (value,) in conn.execute("SELECT value FROM outbox"):
            event = decode(value)
            if isinstance(event.data, TierChanged):
                out.tier_changed += 1
            if not isinstance(event.data, SciUpdated):
                continue
            out.sci_updated += 1
            p = event.data
            rank = (p.model, p.revision, p.calibration, p.as_of, event.id)
            key = (p.learner_id, p.skill)
            if key not in held or rank > held[key][0]:
                held[key] = (rank, p)
        calibrations = {
            k: Correction.from_doc(json.loads(d))
            for k, d in conn.execute("SELECT key, doc FROM docs WHERE collection=?", (CALIBRATIONS,))
        }
        for (text,) in conn.execute("SELECT doc FROM docs WHERE collection=?", (SCORES,)):
            doc = json.loads(text)
            if not doc["raters"]:
                continue
            out.scores += 1
            correction = calibrations.get(doc["skill"], Correction())
            expected = sci_updated(doc, current_score(doc, correction), correction)
            got = held.get((doc["learner_id"], doc["skill"]))
            if got is None or got[1] != expected:
                out.wrong.append(f"{doc['learner_id']}/{doc['skill']}")
    finally:
        conn.close()
    return out
