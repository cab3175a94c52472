"""Read routes of the evidence service: the evidence trail, newest first, with a cursor.

Without ``skill`` the trail is read from the all-skills keyspace (keyed by time), with it
from the per-skill keyspace; both are descending key-prefix scans. A prefix scan of learner
``x`` also reaches learner ``x/y``'s keys, so rows are kept only if their document is the
learner's (and the skill's). The cursor is opaque: it names the query it was issued for
and the last key returned, and is refused (422) for any other query.

Anyone may read a trail, but only the learner concerned (and operators, by token) sees who
rated them and how on each rubric dimension; anyone else sees what the passport shows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.evidence.domain import trail_prefix
from services.evidence.projection import EVIDENCE, EVIDENCE_BY_SKILL
from shared.auth import MaybePrincipalDep
from shared.catalog import get_catalog
from shared.problems import Problem
from shared.service import ContextDep

router = APIRouter(prefix="/v1", tags=["evidence"])


class EvidenceItem(BaseModel):
    evidence_id: str
    learner_id: str
    skill: str
    specialty: str | None
    session_id: str | None = Field(description="shown to the learner concerned and operators only")
    rater_id: str | None = Field(description="shown to the learner concerned and operators only")
    scores: dict[str, int] | None = Field(
        description="each rubric dimension's score; shown to the learner concerned and operators only"
    )
    format: str | None
    occurred_at: str
    mean_score: float = Field(description="the rating's mean rubric score, as the passport shows it")


class EvidencePage(BaseModel):
    items: list[EvidenceItem]
    next_cursor: str | None


def _encode_cursor(query: list[str | None], key: str) -> str:
    raw = json.dumps([*query, key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, query: list[str | None], prefix: str) -> str:
    """The key to continue after; 422 unless this service issued the cursor for this query."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw.decode())
    except (ValueError, RecursionError) as exc:  # bad base64 / non-ASCII / not UTF-8 / not JSON
        raise Problem(422, "cursor is not one this service issued") from exc
    if not isinstance(decoded, list) or len(decoded) != len(query) + 1:
        raise Problem(422, "cursor is not one this service issued")
    key = decoded[-1]
    if decoded[:-1] != query or not isinstance(key, str) or not key.startswith(prefix):
        raise Problem(422, "cursor does not belong to this query")
    return key


def _item(doc: dict[str, Any], *, full: bool) -> EvidenceItem:
    """An item; without ``full`` (a stranger asks) only what the passport shows: no rater, no
    session (which names the partner), no per-dimension scores."""
    scores = doc["scores"]
    item = EvidenceItem(**doc, mean_score=round(sum(scores.values()) / len(scores), 3))
    return item if full else item.model_copy(update={"session_id": None, "rater_id": None, "scores": None})


def _keep(learner_id: str, skill: str | None, specialty: str | None) -> Callable[[dict[str, Any]], bool]:
    def keep(doc: dict[str, Any]) -> bool:
        return (
            doc.get("learner_id") == learner_id
            and (skill is None or doc.get("skill") == skill)
            and (specialty is None or doc.get("specialty") == specialty)
            and bool(doc.get("scores"))  # never true of what the fold writes; no division by zero
        )

    return keep


@router.get("/evidence", response_model=EvidencePage)
async def evidence_trail(
    ctx: ContextDep,
    principal: MaybePrincipalDep,
    learner_id: str = Query(min_length=1),
    skill: str | None = None,
    specialty: str | None = None,
    cursor: str | None = None,
    limit: int = Query(20, ge=1, le=100),
) -> EvidencePage:
    if skill is not None and (problems := get_catalog().problems(skill, specialty=specialty)):
        raise Problem(422, "; ".join(problems))
    keyspace = EVIDENCE_BY_SKILL if skill is not None else EVIDENCE
    query: list[str | None] = [keyspace, learner_id, skill, specialty]
    prefix = trail_prefix(learner_id, skill)
    after = _decode_cursor(cursor, query, prefix) if cursor else None
    keep = _keep(learner_id, skill, specialty)
    # Read one matching row past the page, so next_cursor is only given when there is more.
    found: list[tuple[str, dict[str, Any]]] = []
    batch = limit * 2
    while len(found) <= limit:
        rows = await ctx.store.scan(keyspace, prefix, after=after, limit=batch, descending=True)
        found.extend((key, doc) for key, doc in rows if keep(doc))
        if len(rows) < batch:
            break
        after = rows[-1][0]
    page = found[:limit]
    more = len(found) > limit
    full = principal is not None and (principal.is_ops or principal.learner_id == learner_id)
    return EvidencePage(
        items=[_item(doc, full=full) for _, doc in page],
        next_cursor=_encode_cursor(query, page[-1][0]) if more else None,
    )
