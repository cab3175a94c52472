"""Who each learner met lately in one skill, as the matcher knows it (pure).

The projection keeps a learner's latest partners in the skill (``partners`` documents, with
the match ids they came from), folded into the shared store by whichever replica folds the
skill's partition. The matcher sees every MatchFound of the skills it owns in its own reading
of the log, from the position its book was loaded at. A learner's memory is the store's
document merged with what the log said since: the document's entries, then the matches of
this reading that come after the document's last one. That is exact whether the store had
folded those matches or not when it was read, so a document is read once per learner, and
the memory is then kept up to date from the log alone (it goes with the skill when the
replica loses its partition).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

#: How many matches of each learner the memory keeps from the log (the projection's documents
#: keep as many).
KEPT = 10


class PartnerMemory:
    """The recent partners of the learners of one skill; ``Partners`` for the engine."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._since: dict[str, deque[tuple[str, str]]] = {}  # learner -> (match id, partner), from the log
        self._recent: dict[str, deque[str]] = {}  # learners whose document was merged

    def loaded(self, learner_id: str) -> bool:
        return learner_id in self._recent

    def load(self, learner_id: str, doc: Mapping[str, Any] | None) -> None:
        """Merge the learner's ``partners`` document (None: none) with the log read since."""
        partners: list[str] = list(doc.get("partners", [])) if doc else []
        matches: list[str] | None = list(doc["matches"]) if doc and "matches" in doc else None
        since = list(self._since.get(learner_id, ()))
        if matches is None and doc:  # a document from before match ids: count the log on top
            later = since
        else:
            known = (matches or [])[-1:]
            ids = [match_id for match_id, _ in since]
            later = since[ids.index(known[0]) + 1 :] if known and known[0] in ids else since
        merged = partners + [partner for _, partner in later]
        self._recent[learner_id] = deque(merged[-self.keep :] if self.keep > 0 else (), maxlen=self.keep)

    def met(self, match_id: str, learner_a: str, learner_b: str) -> None:
        """An effective MatchFound of the skill, in log order."""
        for one, other in ((learner_a, learner_b), (learner_b, learner_a)):
            self._since.setdefault(one, deque(maxlen=KEPT)).append((match_id, other))
            if self.keep > 0 and one in self._recent:
                self._recent[one].append(other)

    def recent(self, learner_id: str) -> tuple[str, ...]:
        known = self._recent.get(learner_id)
        if known is not None:
            return tuple(known)
        # not loaded (the matcher loads every learner before deciding for them): the log alone
        return (
            tuple(partner for _, partner in self._since.get(learner_id, ()))[-self.keep :]
            if self.keep
            else ()
        )
