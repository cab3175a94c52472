"""What a rebuilt sci version announces when it goes live.

Built with the same rules (``SCORE_MODEL``) as the retired version: one SciUpdated (and
TierChanged when the tier moved) per learner and skill whose score differs from the one the
retired version served under its own calibration; usually none. Built with other rules: every
score. The stored facts do not depend on the rules (a score is computed from them when read),
so the code that computes both versions' scores is the new one and cannot tell what changed;
what readers hold came from the old rules, so each score is announced, with the new model's
number, which readers rank above the old model's at any revision."""

from __future__ import annotations

import asyncio

from services.sci.domain import Correction
from services.sci.projection import CALIBRATIONS, SCORES, current_score, sci_updated
from shared.events.payloads import Payload, TierChanged
from shared.store.base import Store

PAGE = 1000


async def changed_scores(old: Store, new: Store, every: bool = False) -> list[Payload]:
    """The announcements of ``new`` over ``old`` (two versions of the sci store): every score
    when ``every``."""
    corrections: dict[tuple[int, str], Correction] = {}

    async def correction(store: Store, which: int, skill: str) -> Correction:
        if (which, skill) not in corrections:
            corrections[(which, skill)] = Correction.from_doc(await store.get(CALIBRATIONS, skill))
        return corrections[(which, skill)]

    out: list[Payload] = []
    after: str | None = None
    while page := await new.scan(SCORES, after=after, limit=PAGE):
        before = await old.get_many(SCORES, [key for key, _ in page])
        for key, doc in page:
            if not doc["raters"]:
                continue
            skill = doc["skill"]
            now = current_score(doc, await correction(new, 2, skill))
            held = before.get(key)
            then = current_score(held, await correction(old, 1, skill)) if held and held["raters"] else None
            if then == now and not every:
                continue
            out.append(sci_updated(doc, now, await correction(new, 2, skill)))
            if then is not None and then.tier != now.tier:
                out.append(
                    TierChanged(
                        learner_id=doc["learner_id"],
                        skill=skill,
                        from_tier=then.tier,
                        to_tier=now.tier,
                        as_of=now.as_of,
                    )
                )
        after = page[-1][0]
        await asyncio.sleep(0)  # a large store: let the loop run between pages
    return out
