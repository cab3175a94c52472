"""Versions of a projection (pure): one rebuild at a time, resumed when its rebuild went quiet,
handed over only past the frozen live offsets, and a switch that never goes back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.projection.versions import (
    BUILDING,
    HANDOVER,
    LIVE,
    RETIRED,
    VersionError,
    Versions,
    consumer_of,
    namespace,
    version_of,
)

STALE = 30.0


def begin(versions: Versions, owner: str = "1@a", now: float = 100.0) -> tuple[Versions, int, bool]:
    out, version, resumed = versions.begin(at="t", by="ops", owner=owner, now=now, stale_s=STALE)
    return out, version.number, resumed


def test_version_one_keeps_the_names_a_store_had_before_versions() -> None:
    assert namespace("scores", 1) == "scores" and consumer_of("sci", 1) == "sci"
    assert namespace("scores", 2) == "v2__scores" and consumer_of("sci", 2) == "sci.v2"
    assert version_of("v2__scores") == (2, "scores") and version_of("_log_fingerprints") == (
        1,
        "_log_fingerprints",
    )
    assert namespace("_projection_versions", 3) == "_projection_versions"
    fresh = Versions.from_doc("sci", None)
    assert fresh.live == 1 and fresh.versions[1].state == LIVE
    assert Versions.from_doc("sci", fresh.to_doc()) == fresh


def test_a_second_rebuild_is_refused_while_the_first_is_alive_and_resumes_once_it_went_quiet() -> None:
    versions, number, resumed = begin(Versions("sci"))
    assert (number, resumed, versions.versions[2].state) == (2, False, BUILDING)
    with pytest.raises(VersionError, match="being rebuilt already: version 2"):
        begin(versions, owner="2@b", now=110.0)
    _, again, resumed = begin(versions, owner="1@a", now=111.0)  # the same rebuild asking again
    assert (again, resumed) == (2, True)
    taken, again, resumed = begin(versions, owner="2@b", now=100.0 + STALE + 1)  # the first was killed
    assert (again, resumed, taken.versions[2].owner) == (2, True, "2@b")
    with pytest.raises(VersionError, match="now building, folded by 2@b"):
        taken.beat(2, "1@a", 200.0)  # the old one, if it wakes, stops


def test_the_hand_over_goes_live_only_past_the_frozen_offsets_and_retires_the_old() -> None:
    versions, number, _ = begin(Versions("sci"))
    versions = versions.hand_over(number)
    assert versions.versions[number].state == HANDOVER
    with pytest.raises(VersionError, match="waits for the service"):
        begin(versions, owner="2@b", now=1000.0)
    versions = versions.freeze(number, {"t[0]": 10, "t[1]": 4})
    assert not versions.ready(number, {"t[0]": 10, "t[1]": 3})
    assert not versions.ready(number, {"t[0]": 10})
    assert versions.ready(number, {"t[0]": 10, "t[1]": 4, "t[2]": 0})
    live = versions.go_live(number)
    assert live.live == 2 and live.versions[1].state == RETIRED and live.versions[2].state == LIVE
    with pytest.raises(VersionError, match="only a retired one"):
        live.drop(2)
    assert set(live.drop(1).versions) == {2}
    again, third, _ = begin(live, now=500.0)
    assert third == 3 and again.live == 2


@given(st.lists(st.sampled_from(["begin", "beat", "hand_over", "go_live", "drop"]), max_size=30))
def test_whatever_operators_do_one_version_is_live_and_at_most_one_is_in_progress(steps: list[str]) -> None:
    versions, now = Versions("p"), 0.0
    for step in steps:
        now += 1.0
        current = versions.in_progress
        try:
            if step == "begin":
                versions, _, _ = begin(versions, now=now)
            elif step == "beat" and current is not None:
                versions = versions.beat(current.number, "1@a", now)
            elif step == "hand_over" and current is not None:
                versions = versions.hand_over(current.number)
            elif step == "go_live" and current is not None:
                versions = versions.freeze(current.number, {}).go_live(current.number)
            elif step == "drop":
                versions = versions.drop(min(versions.versions))
        except VersionError:
            pass
        states = [v.state for v in versions.versions.values()]
        assert states.count(LIVE) == 1 and versions.versions[versions.live].state == LIVE
        assert states.count(BUILDING) + states.count(HANDOVER) <= 1
        assert Versions.from_doc("p", versions.to_doc()) == versions
