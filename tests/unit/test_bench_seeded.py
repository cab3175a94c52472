"""The benches' shared seeds and target checks (``bench/seeded.py``)."""

from __future__ import annotations

import argparse

import pytest

from bench.seeded import HELD_OUT_SEEDS, TUNING_SEEDS, Check, add_seed_arguments, chosen_seeds, split


def parsed(*argv: str) -> tuple[list[int], bool]:
    parser = argparse.ArgumentParser()
    add_seed_arguments(parser)
    return chosen_seeds(parser, parser.parse_args(list(argv)))


def test_seeds_are_held_out_unless_asked_otherwise() -> None:
    assert parsed() == (HELD_OUT_SEEDS, True)
    assert parsed("--tune") == (TUNING_SEEDS, False)
    assert parsed("--seeds", "7", "2") == ([7, 2], False)  # one tuning seed among them
    assert parsed("--seeds", "7") == ([7], True)
    with pytest.raises(SystemExit):
        parsed("--tune", "--seeds", "7")


def test_a_check_says_by_how_much_it_is_met_or_missed() -> None:
    assert Check("a", 1.0, 1.0, at_most=True).ok and not Check("a", 1.0, 1.0, True, strict=True).ok
    assert Check("b", 0.6, 0.5, at_most=False).margin == pytest.approx(0.1)
    missed = Check("c", 1.25, 1.10, at_most=True)
    assert not missed.ok and missed.line() == "MISSED: c: 1.2500 (<= 1.1000; missed by 0.1500)"
    assert Check("d", None, 1.0, True).line() == "MISSED: d: nothing measured (<= 1.0000)"
    assert split("biased@12") == ("biased", 12)
