"""A calibration read back from its RatersCalibrated parts is the one the service scored with:
every part logged, in any order, gives the same ``Correction``, bit for bit; the one in force at
a time is the complete one over the most ratings logged by then; and which partition a key's
records are in (an audit reads only those)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from cli.audit_commands import parse_time
from services.sci.calibration import Rating, calibrate
from services.sci.calibration_log import CalibrationLog, assemble
from services.sci.domain import Correction
from services.sci.recalibration import announcements
from shared.events.envelope import decode, encode, new_event
from shared.events.payloads import RatersCalibrated
from shared.log_window import partition_of

ML = "machine-learning"
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def calibrated(raters: int = 7, learners: int = 9) -> Correction:
    ratings = [
        Rating(ratee_id=f"l{i}", rater_id=f"r{j}", rating_id=f"{i}-{j}", value=1 + (i * 7 + j * 3) % 5)
        for i in range(learners)
        for j in range(raters)
        if (i + j) % 3
    ]
    correction = calibrate(ratings).correction()
    return Correction(**{**correction.__dict__, "senior": frozenset({"l1", "l4", "l7"})})


def through_the_log(parts: list[RatersCalibrated]) -> list[RatersCalibrated]:
    """Each part as a reader decodes it from the log."""
    out = []
    for part in parts:
        data = decode(encode(new_event(part, source="sci"))).data
        assert isinstance(data, RatersCalibrated)
        out.append(data)
    return out


def test_a_calibration_logged_in_parts_reads_back_as_the_same_correction() -> None:
    held = calibrated()
    parts = through_the_log(announcements(ML, held, per_part=3))
    assert len(parts) == 3 and all(p.default_weight == held.default_weight for p in parts)
    found = assemble([(p, T0 + timedelta(seconds=n)) for n, p in enumerate(reversed(parts))])
    assert found is not None and found.whole and found.skill == ML
    assert found.correction == held  # floats and all: the score it gives is the service's
    assert found.logged_at == T0 + timedelta(seconds=2)  # in force once its last part is logged


def test_severity_per_rubric_dimension_travels_in_parts_too() -> None:
    severity = {"a": {"deployment": -0.25, "generalization": 0.125}, "c": {"deployment": 0.5}}
    held = Correction(
        bias={"a": 0.1, "b": 0.0, "c": -0.2},
        weight={"a": 2.0, "b": 1.0, "c": 1.5},
        ratings=30,
        digest="d",
        severity=severity,
        rubric_prior=1.75,
    )
    parts = through_the_log(announcements(ML, held, per_part=2))
    assert [sorted(p.severity) for p in parts] == [["a"], ["c"]]  # each with its own raters
    found = assemble([(p, T0) for p in reversed(parts)])
    assert found is not None and found.correction.severity == severity
    assert found.correction.rubric_prior == 1.75


def test_seniors_travel_in_parts_too() -> None:
    held = Correction(bias={"a": 0.1}, weight={"a": 2.0}, ratings=3, digest="d", senior=frozenset("uvwxy"))
    parts = announcements(ML, held, per_part=2)
    assert [(len(p.bias), len(p.senior)) for p in parts] == [(1, 2), (0, 2), (0, 1)]
    found = assemble([(p, T0) for p in parts])
    assert found is not None and found.correction == held


def test_a_missing_part_makes_no_calibration_and_old_parts_only_the_biases() -> None:
    parts = announcements(ML, calibrated(), per_part=3)
    assert assemble([(p, T0) for p in parts[1:]]) is None
    legacy = RatersCalibrated(skill=ML, version="v", digest="d", ratings=10, part=0, parts=1, bias={"r": 0.3})
    found = assemble([(legacy, T0)])
    assert found is not None and not found.whole
    assert found.correction.bias == {"r": 0.3} and found.correction.ratings == 10


def test_the_calibration_in_force_is_the_complete_one_over_most_ratings_logged_by_then() -> None:
    small = Correction(bias={"a": 0.1}, ratings=10, digest="d10", version="v")
    large = Correction(bias={"a": 0.2, "b": 0.0}, ratings=20, digest="d20", version="v")
    log = CalibrationLog()
    for part in announcements(ML, small):
        log.add(part, T0)
    first, second = announcements(ML, large, per_part=1)
    log.add(first, T0 + timedelta(hours=1))
    assert log.in_force(ML).correction.digest == "d10"  # type: ignore[union-attr]
    log.add(second, T0 + timedelta(hours=2))
    assert log.in_force(ML).correction.digest == "d20"  # type: ignore[union-attr]
    assert log.in_force(ML, T0 + timedelta(minutes=90)).correction.digest == "d10"  # type: ignore[union-attr]
    assert log.in_force(ML, T0 - timedelta(seconds=1)) is None
    assert log.in_force("data-engineering") is None


@given(st.text(min_size=1, max_size=40), st.integers(min_value=1, max_value=12))
def test_a_key_is_read_where_the_producers_partitioner_put_it(key: str, partitions: int) -> None:
    every = list(range(partitions))
    assert partition_of(key, partitions) == DefaultPartitioner()(key.encode(), every, every)


def test_a_date_alone_is_audited_as_of_the_end_of_that_day() -> None:
    assert parse_time("2026-06-01") == datetime(2026, 6, 1, 23, 59, 59, 999000, tzinfo=UTC)
    assert parse_time("2026-06-01T12:00:00") == datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert parse_time("2026-06-01T12:00:00+02:00") == datetime(2026, 6, 1, 10, tzinfo=UTC)
