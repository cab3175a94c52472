"""The evidence trail's cursor: opaque, tied to its query, and never a 500 whatever is sent."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.evidence.api import _decode_cursor, _encode_cursor
from shared.problems import Problem

QUERY: list[str | None] = ["evidence", "bob", None, None]
KEY = "bob/2026-11-01T10:00:00.000000Z/e1"


def test_a_cursor_round_trips_for_its_own_query() -> None:
    assert _decode_cursor(_encode_cursor(QUERY, KEY), QUERY, "bob/") == KEY


@pytest.mark.parametrize(
    "other",
    [
        ["evidence_by_skill", "bob", None, None],  # the other keyspace
        ["evidence", "bo", None, None],  # a learner whose id is a prefix
        ["evidence", "bob", None, "nlp"],  # another specialty filter
    ],
)
def test_a_cursor_is_refused_for_another_query(other: list[str | None]) -> None:
    with pytest.raises(Problem, match="does not belong") as raised:
        _decode_cursor(_encode_cursor(QUERY, KEY), other, "bo/" if other[1] == "bo" else "bob/")
    assert raised.value.status == 422


def test_a_key_outside_the_querys_prefix_is_refused() -> None:
    with pytest.raises(Problem, match="does not belong"):
        _decode_cursor(_encode_cursor(QUERY, "eve/2026/e1"), QUERY, "bob/")


@pytest.mark.parametrize(
    "cursor",
    ["é", "ü" * 10, "!!!", "a", base64.urlsafe_b64encode(b"\xff\xfe").decode(), "e30", "W1tbW1tbW1tb"],
)
def test_malformed_cursors_are_422(cursor: str) -> None:
    with pytest.raises(Problem) as raised:
        _decode_cursor(cursor, QUERY, "bob/")
    assert raised.value.status == 422


@given(st.text(max_size=200))
def test_any_text_is_a_cursor_or_a_422(cursor: str) -> None:
    try:
        _decode_cursor(cursor, QUERY, "bob/")
    except Problem as problem:
        assert problem.status == 422
