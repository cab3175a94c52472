"""The load bench's checks that the answers were right, not only fast.

Once the load stops and the folds have caught up:

- every rating answered 201 is in the ratee's evidence trail exactly once
  (``GET /v1/evidence?learner_id=`` through the gateway, every page), and the trail holds no
  item of the bench's sessions that was not answered 201 (a rating sent but never answered,
  the client having given up, may be there at most once: counted apart);
- each skill page counts the learners the bench had claim it (``learners_verifying``) and
  the sessions with at least one accepted rating (``sessions_completed``);
- no answer of the whole run was a 5xx.

Both reads are retried until they agree or ``SETTLE_S`` pass (the projections follow the log).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bench.load_setup import Api, bounded

SETTLE_S = 90.0


@dataclass
class CheckResult:
    ratings: int = 0
    ratees: int = 0
    missing: int = 0  # accepted ratings not in the trail
    duplicated: int = 0  # accepted ratings in the trail more than once
    unexpected: int = 0  # trail items of the bench's sessions that no 201 accounts for
    unanswered_kept: int = 0  # ratings sent without an answer that the trail holds (once)
    skill_pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def evidence_exact(self) -> bool:
        return self.missing == 0 and self.duplicated == 0 and self.unexpected == 0

    @property
    def skill_pages_match(self) -> bool:
        return all(p["match"] for p in self.skill_pages.values())


async def trail(api: Api, learner: str) -> list[dict[str, Any]] | None:
    """Every evidence item of ``learner`` (None when a page could not be read)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        path = f"/v1/evidence?learner_id={quote(learner)}&limit=100"
        if cursor:
            path += f"&cursor={quote(cursor)}"
        # as the learner: only they (and operators) see who rated them
        answer = await api.call("GET /v1/evidence?learner_id (check)", "GET", path, actor=learner)
        if answer is None or answer.status != 200:
            return None
        page = answer.json()
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return items


Key = tuple[str, str, str]  # (session, rater, skill)


async def _compare(
    api: Api, ratee: str, expected: Counter[Key], maybe: set[Key], sessions: set[str]
) -> tuple[int, int, int, int]:
    """(missing, duplicated, unexpected, unanswered kept) of one ratee's trail against its
    accepted ratings (``expected``) and those sent without an answer (``maybe``)."""
    items = await trail(api, ratee)
    if items is None:
        return sum(expected.values()), 0, 0, 0
    found = Counter(
        (str(i["session_id"]), str(i["rater_id"]), str(i["skill"]))
        for i in items
        if i["session_id"] in sessions
    )
    missing = sum(1 for key in expected if found[key] == 0)
    duplicated = sum(1 for key in [*expected, *maybe] if found[key] > 1)
    unexpected = sum(n for key, n in found.items() if key not in expected and key not in maybe)
    kept = sum(1 for key in maybe if found[key] == 1)
    return missing, duplicated, unexpected, kept


Rating = tuple[str, str, str, str]  # (session, rater, ratee, skill)


async def check_evidence(
    api: Api, accepted: list[Rating], unanswered: list[Rating], result: CheckResult
) -> None:
    by_ratee: dict[str, Counter[Key]] = {}
    maybe: dict[str, set[Key]] = {}
    for session, rater, ratee, skill in accepted:
        by_ratee.setdefault(ratee, Counter())[(session, rater, skill)] += 1
    for session, rater, ratee, skill in unanswered:
        maybe.setdefault(ratee, set()).add((session, rater, skill))
        by_ratee.setdefault(ratee, Counter())
    sessions = {a[0] for a in accepted + unanswered}
    result.ratings, result.ratees = len(accepted), len(by_ratee)
    deadline = time.monotonic() + SETTLE_S
    todo = dict(by_ratee)
    last: dict[str, tuple[int, int, int, int]] = {}
    while True:
        outcomes = await bounded(16, [_compare(api, r, todo[r], maybe.get(r, set()), sessions) for r in todo])
        last.update(zip(todo, outcomes, strict=True))
        bad = {r: o for r, o in zip(todo, outcomes, strict=True) if any(o[:3])}
        # a missing item may still be on its way; a duplicate or a stranger never goes away
        if not any(o[0] for o in bad.values()) or time.monotonic() > deadline:
            result.missing = sum(o[0] for o in bad.values())
            result.duplicated = sum(o[1] for o in bad.values())
            result.unexpected = sum(o[2] for o in bad.values())
            result.unanswered_kept = sum(o[3] for o in last.values())
            return
        todo = {r: todo[r] for r in bad}
        await asyncio.sleep(2.0)


async def check_skill_pages(
    api: Api,
    claims: dict[str, set[str]],
    rated: dict[str, set[str]],
    unsure: dict[str, set[str]],
    result: CheckResult,
) -> None:
    """Each skill page against what the bench did: ``rated`` sessions had a rating accepted;
    ``unsure`` ones only a rating sent without an answer (they may count or not)."""
    deadline = time.monotonic() + SETTLE_S
    for skill in sorted(claims):
        least = len(rated.get(skill, set()))
        most = len(rated.get(skill, set()) | unsure.get(skill, set()))
        learners = len(claims[skill])
        while True:
            answer = await api.call("GET /v1/skills/{skill} (check)", "GET", f"/v1/skills/{skill}")
            page = answer.json() if answer is not None and answer.status == 200 else {}
            shown = {k: page.get(k) for k in ("learners_verifying", "sessions_completed")}
            sessions = shown["sessions_completed"]
            match = (
                shown["learners_verifying"] == learners
                and isinstance(sessions, int)
                and least <= sessions <= most
            )
            if match or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        expected = {
            "learners_verifying": learners,
            "sessions_completed": least if least == most else [least, most],
        }
        result.skill_pages[skill] = {"expected": expected, "shown": shown, "match": match}


async def run_checks(
    api: Api, accepted: list[Rating], unanswered: list[Rating], claims: dict[str, set[str]]
) -> CheckResult:
    result = CheckResult()
    started = time.monotonic()
    rated: dict[str, set[str]] = {}
    unsure: dict[str, set[str]] = {}
    for session, _, _, skill in accepted:
        rated.setdefault(skill, set()).add(session)
    for session, _, _, skill in unanswered:
        unsure.setdefault(skill, set()).add(session)
    await check_evidence(api, accepted, unanswered, result)
    await check_skill_pages(api, claims, rated, unsure, result)
    result.seconds = round(time.monotonic() - started, 1)
    return result
