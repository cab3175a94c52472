"""The deadlines index (pure): which sessions wait on a window, in the order the windows close.

``deadlines/{due}/{session_id}`` -> ``{session_id, kind, due}`` is present exactly while the
session's confirmation or no-show claim is pending (``kind``: ``confirm`` or ``contest``). It is
written in the same store write as the session document, by the command or the fold that moved
the session (``changes``), so the sweep (``services.sessions.sweep``) finds what is due by
scanning the index from its start, never the sessions, and a restarted or rebuilt service finds
the same deadlines in its store.
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.sessions.document import PENDING, Doc, parse
from shared.projection.fold import DocRef

DEADLINES = "deadlines"
CONFIRM, CONTEST = "confirm", "contest"


def due_stamp(at: datetime) -> str:
    """Fixed-width UTC (``YYYY-MM-DDTHH:MM:SS.ffffffZ``), so key order is time order."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def entry_of(doc: Doc | None) -> tuple[str, Doc] | None:
    """The index entry a session document calls for (key, entry), if it waits on a window."""
    if doc is None:
        return None
    for kind, part in ((CONFIRM, doc.get("confirmation")), (CONTEST, doc.get("no_show_claim"))):
        if part is not None and part["state"] == PENDING and part["deadline"] is not None:
            due = due_stamp(parse(part["deadline"]))
            return f"{due}/{doc['session_id']}", {"session_id": doc["session_id"], "kind": kind, "due": due}
    return None


def changes(before: Doc | None, after: Doc | None) -> dict[DocRef, Doc | None]:
    """The index changes that go with a session moving from ``before`` to ``after``."""
    old, new = entry_of(before), entry_of(after)
    if old == new:
        return {}
    out: dict[DocRef, Doc | None] = {}
    if old is not None:
        out[(DEADLINES, old[0])] = None
    if new is not None:
        out[(DEADLINES, new[0])] = new[1]
    return out


def is_due(key: str, now: datetime) -> bool:
    """Whether the index entry under ``key`` is due at ``now`` (its window has closed)."""
    return key.split("/", 1)[0] <= due_stamp(now)
