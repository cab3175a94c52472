"""A version built only to compare (``lemma replay --verify``) and killed while its documents
are being deleted is never resumed nor handed over half gone: it is retired first."""

from __future__ import annotations

import pytest

from services.evidence.app import projection
from services.evidence.consumers import TOPICS
from shared.projection.versions import RETIRED, VERSIONS, Versions, namespace
from shared.rebuild import Rebuild
from shared.settings import Settings
from shared.store.base import Change
from shared.store.sqlite import SqliteStore


class KilledWhileDeleting(SqliteStore):
    async def drop_collection(self, collection: str) -> int:
        raise KeyboardInterrupt("killed")


async def test_a_compare_copy_killed_while_deleted_is_retired_not_resumed() -> None:
    store = KilledWhileDeleting(":memory:")
    settings = Settings(environment="test")
    rebuild = Rebuild(settings, store, projection(settings), TOPICS, service="evidence", by="ops")
    version = await rebuild.begin()
    await store.write([Change(namespace("evidence", version.number), "e1", {"x": 1})])
    with pytest.raises(KeyboardInterrupt):
        await rebuild.abandon()
    versions = Versions.from_doc("evidence", await store.get(VERSIONS, "evidence"))
    assert versions.versions[version.number].state == RETIRED
    again = Rebuild(settings, store, projection(settings), TOPICS, service="evidence", by="ops", owner="2@h")
    assert (await again.begin()).number == version.number + 1 and not again.resumed
