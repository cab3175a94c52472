"""Rating comments (pure): personal data kept out of the log.

A comment is free text one learner wrote about another, so it never goes into
``RatingSubmitted`` (the log is kept forever). The rating command writes it into the
service's ``personal_comments`` (rating_id -> {comment, rater_id, ratee_id, session_id}) with
an entry per learner in ``personal_comments_by`` ("learner/rating_id"), collections no rebuild
needs or versions; only the ratee and operators read it. When a learner erases their data
(``LearnerErased``) every comment by or about them is deleted (``comments.CommentPurge``).
"""

from __future__ import annotations

from services.sessions.document import Doc
from shared.projection.fold import DocRef

COMMENTS = "personal_comments"
COMMENTS_BY = "personal_comments_by"


def by_key(learner_id: str, rating_id: str) -> str:
    return f"{learner_id}/{rating_id}"


def comment_docs(
    rating_id: str, session_id: str, rater_id: str, ratee_id: str, comment: str | None
) -> dict[DocRef, Doc | None]:
    """The documents a rating's comment is kept in (none for a rating without one)."""
    if not comment:
        return {}
    doc = {"comment": comment, "rater_id": rater_id, "ratee_id": ratee_id, "session_id": session_id}
    return {
        (COMMENTS, rating_id): doc,
        (COMMENTS_BY, by_key(rater_id, rating_id)): {"rating_id": rating_id},
        (COMMENTS_BY, by_key(ratee_id, rating_id)): {"rating_id": rating_id},
    }


def purged(learner_id: str, comments: dict[str, Doc]) -> dict[DocRef, Doc | None]:
    """The deletes that erase every comment by or about ``learner_id`` (``comments``: rating id
    -> comment document, those its index names)."""
    gone: dict[DocRef, Doc | None] = {}
    for rating_id, doc in comments.items():
        gone[(COMMENTS, rating_id)] = None
        for who in (doc["rater_id"], doc["ratee_id"], learner_id):
            gone[(COMMENTS_BY, by_key(str(who), rating_id))] = None
    return gone


def shown_to(viewer: str, is_ops: bool, doc: Doc) -> bool:
    """A comment is for the learner it is about, and for operators."""
    return is_ops or doc.get("ratee_id") == viewer
