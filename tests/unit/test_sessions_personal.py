"""Rating comments kept apart from the log: where they are written, who sees them, and that
erasing a learner deletes every comment by or about them and nothing else."""

from __future__ import annotations

from services.sessions.api import SessionView
from services.sessions.document import applied
from services.sessions.personal import COMMENTS, COMMENTS_BY, by_key, comment_docs, purged, shown_to
from shared.events.payloads import SessionAbandoned
from tests.unit.test_sessions_domain import SID, T0, scheduled


def test_a_comment_is_kept_with_an_entry_for_each_learner_and_none_is_kept_without_one() -> None:
    docs = comment_docs("r1", "s1", "ann", "bob", "sharp on metrics")
    assert docs[(COMMENTS, "r1")] == {
        "comment": "sharp on metrics",
        "rater_id": "ann",
        "ratee_id": "bob",
        "session_id": "s1",
    }
    assert set(docs) == {
        (COMMENTS, "r1"),
        (COMMENTS_BY, by_key("ann", "r1")),
        (COMMENTS_BY, by_key("bob", "r1")),
    }
    assert comment_docs("r1", "s1", "ann", "bob", None) == {} == comment_docs("r1", "s1", "ann", "bob", "")


def test_only_the_ratee_and_operators_see_a_comment() -> None:
    doc = comment_docs("r1", "s1", "ann", "bob", "x")[(COMMENTS, "r1")]
    assert doc is not None
    assert shown_to("bob", False, doc) and shown_to("eve", True, doc)
    assert not shown_to("ann", False, doc) and not shown_to("eve", False, doc)


def test_erasing_a_learner_deletes_their_comments_both_ways_and_no_one_elses() -> None:
    store = {
        **comment_docs("r1", "s1", "ann", "bob", "by ann"),
        **comment_docs("r2", "s1", "bob", "ann", "about ann"),
        **comment_docs("r3", "s2", "bob", "cat", "not ann's"),
    }
    mine = {
        k: v
        for (c, k), v in store.items()
        if c == COMMENTS and v is not None and "ann" in (v["rater_id"], v["ratee_id"])
    }
    gone = purged("ann", mine)
    left = {ref: doc for ref, doc in store.items() if ref not in gone}
    assert all(doc is None for doc in gone.values())
    assert (COMMENTS, "r3") in left and (COMMENTS, "r1") not in left and (COMMENTS, "r2") not in left
    assert not any("ann" in key or key.endswith(("r1", "r2")) for (_, key) in left)


def test_a_session_stored_with_free_text_as_its_abandon_reason_shows_only_a_code() -> None:
    """A document folded before abandon reasons were codes keeps the participant's words until a
    rebuild; the route shows ``other`` instead."""
    doc = applied(
        scheduled(), SessionAbandoned(session_id=SID, abandoned_by="ann", reason="schedule-conflict"), T0
    )
    assert doc is not None
    assert SessionView.model_validate(doc).abandon_reason == "schedule-conflict"
    legacy = {**doc, "abandon_reason": "Bob Smith was rude"}
    assert SessionView.model_validate(legacy).abandon_reason == "other"
