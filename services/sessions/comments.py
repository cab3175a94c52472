"""Rating comments in the store: read for the ratee and operators, and purged for a learner
who erased their data (the rules: ``personal.py``).

The projection folds ``LearnerErased`` into ``erased_learners`` (learner_id -> {purged}); a
periodic purge deletes the comments of each one not purged yet and marks it, so an erasure that
arrives while the service is down is carried out when it is back, and one a rebuild folds
again finds nothing left to delete.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from services.sessions.document import Doc
from services.sessions.personal import COMMENTS, COMMENTS_BY, purged
from services.sessions.projection import ERASED
from shared.service import ServiceContext
from shared.store import Change, Store

log = logging.getLogger(__name__)
PAGE = 500


async def comments_of(store: Store, rating_ids: Iterable[str]) -> dict[str, Doc]:
    wanted = sorted(set(rating_ids))
    return await store.get_many(COMMENTS, wanted) if wanted else {}


class CommentPurge:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def tick(self) -> int:
        """Purge the comments of every erased learner not purged yet; returns how many learners."""
        done = 0
        after: str | None = None
        store = self.ctx.store
        while page := await store.scan(ERASED, after=after, limit=PAGE):
            for learner_id, mark in page:
                if not mark.get("purged"):
                    await self.purge(learner_id)
                    done += 1
            after = page[-1][0]
        return done

    async def purge(self, learner_id: str) -> None:
        store = self.ctx.store
        entries = await store.scan(COMMENTS_BY, f"{learner_id}/", limit=100_000)
        found = await comments_of(store, (str(doc["rating_id"]) for _, doc in entries))
        gone = purged(learner_id, found)
        gone.update({(COMMENTS_BY, key): None for key, _ in entries})  # an entry whose comment is gone
        changes = [Change(c, k, doc) for (c, k), doc in gone.items()]
        changes.append(Change(ERASED, learner_id, {"learner_id": learner_id, "purged": True}))
        await store.write(changes)
        log.info("comments by or about %s erased: %d", learner_id, len(found))
