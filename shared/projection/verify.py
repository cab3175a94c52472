"""Comparing two versions of a projection document by document (``lemma replay --verify``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.projection.fingerprint import FINGERPRINTS
from shared.projection.redrive import REDRIVEN
from shared.store.base import Store

#: Collections that record operations or positions (compared as offsets), not folded facts.
NOT_COMPARED = frozenset({REDRIVEN, FINGERPRINTS})
PAGE = 1000


@dataclass(frozen=True)
class Difference:
    collection: str
    key: str
    live: Any  # the document (None: missing)
    rebuilt: Any

    def describe(self) -> str:
        if self.live is None:
            return f"{self.collection}/{self.key}: only in the rebuilt version"
        if self.rebuilt is None:
            return f"{self.collection}/{self.key}: only in the live version"
        fields = sorted(
            k for k in set(self.live) | set(self.rebuilt) if self.live.get(k) != self.rebuilt.get(k)
        )
        return f"{self.collection}/{self.key}: {', '.join(fields)} differ"


def _without(doc: Any, fields: frozenset[str]) -> Any:
    return {k: v for k, v in doc.items() if k not in fields} if isinstance(doc, dict) else doc


async def _all(store: Store, collection: str) -> dict[str, Any]:
    docs: dict[str, Any] = {}
    after: str | None = None
    while page := await store.scan(collection, after=after, limit=PAGE):
        docs.update(page)
        after = page[-1][0]
    return docs


async def differences(
    live: Store, rebuilt: Store, collections: list[str], ignore: Mapping[str, frozenset[str]] | None = None
) -> list[Difference]:
    """Every document of ``collections`` that is not the same in both versions; ``ignore``: per
    collection, fields that record when something ran rather than what was folded."""
    found: list[Difference] = []
    for collection in sorted(set(collections) - NOT_COMPARED):
        skip = (ignore or {}).get(collection, frozenset())
        left, right = await _all(live, collection), await _all(rebuilt, collection)
        for key in sorted(left.keys() | right.keys()):
            a, b = _without(left.get(key), skip), _without(right.get(key), skip)
            if a != b:
                found.append(Difference(collection, key, left.get(key), right.get(key)))
    return found
