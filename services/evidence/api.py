"""Read routes of the evidence service: the evidence trail, newest first, with a cursor."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from services.evidence.domain import trail_prefix
from services.evidence.projection import EVIDENCE
from shared.catalog import get_catalog
from shared.problems import Problem
from shared.service import ContextDep

router = APIRouter(prefix="/v1", tags=["evidence"])


class EvidenceItem(BaseModel):
    evidence_id: str
    learner_id: str
    skill: str
    specialty: str | None
    session_id: str
    rater_id: str
    scores: dict[str, int]
    format: str | None
    occurred_at: str
    mean_score: float


class EvidencePage(BaseModel):
    items: list[EvidenceItem]
    next_cursor: str | None


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Problem(422, "cursor is not one this service issued") from exc


def _item(doc: dict[str, Any]) -> EvidenceItem:
    scores = doc["scores"]
    return EvidenceItem(**doc, mean_score=round(sum(scores.values()) / len(scores), 3))


@router.get("/evidence", response_model=EvidencePage)
async def evidence_trail(
    ctx: ContextDep,
    learner_id: str = Query(min_length=1),
    skill: str | None = None,
    specialty: str | None = None,
    cursor: str | None = None,
    limit: int = Query(20, ge=1, le=100),
) -> EvidencePage:
    if skill is not None and (problems := get_catalog().problems(skill, specialty=specialty)):
        raise Problem(422, "; ".join(problems))
    prefix = trail_prefix(learner_id, skill)
    after = _decode_cursor(cursor) if cursor else None
    if after is not None and not after.startswith(prefix):
        raise Problem(422, "cursor does not belong to this query")
    items: list[EvidenceItem] = []
    last_key: str | None = None
    exhausted = False
    while len(items) < limit and not exhausted:
        rows = await ctx.store.scan(EVIDENCE, prefix, after=after, limit=limit * 2, descending=True)
        exhausted = len(rows) < limit * 2
        for key, doc in rows:
            after = key
            if specialty is not None and doc.get("specialty") != specialty:
                continue
            items.append(_item(doc))
            last_key = key
            if len(items) == limit:
                break
    more = len(items) == limit and bool(
        await ctx.store.scan(EVIDENCE, prefix, after=last_key, limit=1, descending=True)
    )
    return EvidencePage(items=items, next_cursor=_encode_cursor(last_key) if more and last_key else None)
