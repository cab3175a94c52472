"""The fingerprint check: a store's offsets are refused on a log that is not the one they came from."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.projection.fingerprint import (
    Fingerprint,
    LogView,
    folded_under_other_names,
    mismatch,
    record_digest,
)

CLUSTER = "q4zRZ7mhQ4W1H6QF784CQA"
DIGEST = record_digest(b"ann", b'{"id": "e1"}')
PRINT = Fingerprint(CLUSTER, 41, DIGEST)


def test_the_same_log_grown_since_is_accepted() -> None:
    assert mismatch(41, PRINT, LogView(CLUSTER, 0, 42, DIGEST)) is None
    assert mismatch(41, PRINT, LogView(CLUSTER, 0, 900, DIGEST)) is None


def test_a_stored_offset_past_the_log_end_is_refused() -> None:
    reason = mismatch(41, PRINT, LogView(CLUSTER, 0, 41, None))
    assert reason is not None and "ends before it" in reason
    assert mismatch(41, None, LogView(CLUSTER, 0, 10)) is not None  # without a fingerprint too


def test_another_record_at_the_folded_offset_is_refused() -> None:
    other = record_digest(b"ann", b'{"id": "e2"}')
    reason = mismatch(41, PRINT, LogView(CLUSTER, 0, 500, other))
    assert reason is not None and "not the one the store folded" in reason


def test_a_removed_record_is_refused() -> None:
    reason = mismatch(41, PRINT, LogView(CLUSTER, 0, 500, None))
    assert reason is not None and "not in the log any more" in reason


def test_another_cluster_is_refused_even_with_the_same_records() -> None:
    reason = mismatch(41, PRINT, LogView("another-cluster-id-0000", 0, 500, DIGEST))
    assert reason is not None and CLUSTER in reason


def test_unfolded_records_removed_from_the_head_of_the_log_are_refused() -> None:
    reason = mismatch(41, PRINT, LogView(CLUSTER, 50, 500, None))
    assert reason is not None and "42 to 49" in reason


def test_offsets_kept_before_fingerprints_existed_are_accepted_while_they_fit() -> None:
    assert mismatch(41, None, LogView(CLUSTER, 0, 42)) is None


def test_a_fingerprint_without_a_cluster_id_compares_the_record_only() -> None:
    assert mismatch(41, Fingerprint("", 41, DIGEST), LogView(CLUSTER, 0, 42, DIGEST)) is None


@given(st.binary(max_size=40), st.binary(max_size=40), st.binary(max_size=40), st.binary(max_size=40))
def test_digests_tell_key_and_value_apart(k1: bytes, v1: bytes, k2: bytes, v2: bytes) -> None:
    same = (k1, v1) == (k2, v2)
    assert (record_digest(k1, v1) == record_digest(k2, v2)) == same
    assert record_digest(None, v1) != record_digest(b"", v1)


def test_a_record_that_did_not_come_in_time_is_not_compared() -> None:
    assert mismatch(41, PRINT, LogView(CLUSTER, 0, 500, None, read=False)) is None
    assert mismatch(41, PRINT, LogView(CLUSTER, 0, 30, None, read=False)) is not None  # offsets still


def test_the_same_topic_under_another_prefix_is_found() -> None:
    stored = ["staging.lemma.sessions.v1", "lemma.sessions.v1", "staging.lemma.matching.v1"]
    found = folded_under_other_names(stored, "prod.lemma.sessions.v1", "lemma.sessions.v1")
    assert found == ["lemma.sessions.v1", "staging.lemma.sessions.v1"]
    assert folded_under_other_names(stored, "lemma.sessions.v1", "lemma.sessions.v1") == [
        "staging.lemma.sessions.v1"
    ]
    assert folded_under_other_names(["lemma.sci.v1"], "lemma.sessions.v1", "lemma.sessions.v1") == []
