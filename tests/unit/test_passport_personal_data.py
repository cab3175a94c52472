"""A store written before personal data moved apart (display names in ``learners``, emails in
``waitlist``) is moved into the ``personal_*`` collections at start, once, losing nothing."""

from __future__ import annotations

from services.passport.domain import LEARNERS, PROFILES, WAITLIST
from services.passport.records import LEGACY_WAITLIST, find_learner, move_personal_data
from shared.store.base import Change
from shared.store.sqlite import SqliteStore


async def test_legacy_names_and_emails_move_to_the_personal_collections_once() -> None:
    store = SqliteStore(":memory:")
    legacy = [
        Change(
            LEARNERS,
            f"u{i}",
            {
                "learner_id": f"u{i}",
                "handle": f"h{i}",
                "display_name": f"Name {i}",
                "claims": {},
                "registered_at": "2026-11-01T10:00:00+00:00",
            },
        )
        for i in range(1203)
    ]
    legacy += [
        Change(LEGACY_WAITLIST, f"e{i}@example.org", {"email": f"e{i}@example.org", "skills": []})
        for i in range(3)
    ]
    legacy.append(Change(LEARNERS, "new", {"learner_id": "new", "handle": "hn", "claims": {}}))  # no name
    await store.write(legacy)

    assert await move_personal_data(store) == 1206
    assert await store.count(PROFILES) == 1203 and await store.count(WAITLIST) == 3
    assert await store.count(LEGACY_WAITLIST) == 0
    assert not [doc for _, doc in await store.scan(LEARNERS, limit=2000) if "display_name" in doc]
    learner = await find_learner(store, "u7")
    assert learner is not None and learner["display_name"] == "Name 7"
    assert (await find_learner(store, "new") or {})["display_name"] == "hn"  # no profile: the handle
    assert await move_personal_data(store) == 0  # nothing left to move
    assert await store.get(WAITLIST, "e1@example.org") == {"email": "e1@example.org", "skills": []}
