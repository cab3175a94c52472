"""Consistency tokens: the codec, and the flow of the system the waiting follows."""

from __future__ import annotations

import base64
import importlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.consistency import BadToken, decode_tokens, encode_token
from shared.events.flow import FOLDS, PRODUCES, distances
from shared.events.registry import Topic

places = st.dictionaries(
    st.tuples(st.sampled_from([t.value for t in Topic]), st.integers(0, 63)),
    st.integers(0, 2**53),
    max_size=8,
)


@given(places, places)
def test_tokens_round_trip_and_merge_to_the_furthest_position(a: dict, b: dict) -> None:  # type: ignore[type-arg]
    assert decode_tokens(encode_token(a)) == a
    merged = decode_tokens(f"{encode_token(a)}, {encode_token(b)}")
    assert merged == {k: max(a.get(k, -1), b.get(k, -1)) for k in a.keys() | b.keys()}


@pytest.mark.parametrize("header", ["not a token!", "e30", encode_token({}) + "x", "WzFd", "eyJhIjogLTF9"])
def test_a_token_not_ours_is_refused(header: str) -> None:
    if header == "e30":  # "{}": no positions, fine
        assert decode_tokens(header) == {}
        return
    with pytest.raises(BadToken):
        decode_tokens(header)


def test_a_token_of_deeply_nested_json_is_refused_not_a_server_error() -> None:
    """Found by fuzzing the services' documented Lemma-After header: json.loads raised
    RecursionError, which no handler took, and every route answered 500."""
    nested = base64.urlsafe_b64encode(b"[" * 5000).decode()
    with pytest.raises(BadToken):
        decode_tokens(nested)


def test_the_flow_is_what_each_service_folds() -> None:
    for service, topics in FOLDS.items():
        consumers = importlib.import_module(f"services.{service}.consumers")
        assert set(consumers.TOPICS) == set(topics), service
        assert PRODUCES[service].value.split(".")[1] == service


def test_a_rating_reaches_the_passport_through_evidence_and_sci() -> None:
    far = distances("passport")
    assert far[Topic.EVIDENCE] == far[Topic.SCI] == 0  # folded by the passport itself
    assert far[Topic.SESSIONS] == 1  # one service away (evidence, sci)
    assert far[Topic.MATCHING] == 2  # sessions folds it
    assert distances("matching")[Topic.SESSIONS] == 0
