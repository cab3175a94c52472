"""The SCI's scale as every reader shows it: the four parts with their maxima, and the four
tiers a learner holds in a skill.

sci decides a learner's tier from the evidence (its tier rules ask for more than an SCI:
Proof, sessions, raters). ``MIN_SCI`` is the part of those rules a reader can use on its own:
the SCI band a value falls in, e.g. the tier a skill's average SCI sits in.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.freshness import FRESHNESS_MAX

PRACTICE_MAX = 25.0
PROOF_MAX = 40.0
RELIABILITY_MAX = 20.0

#: The parts in the order they are shown, with their maxima (they add up to 100).
PART_MAX: Mapping[str, float] = {
    "practice": PRACTICE_MAX,
    "proof": PROOF_MAX,
    "reliability": RELIABILITY_MAX,
    "freshness": FRESHNESS_MAX,
}

CLAIMED = 1
PRACTICING = 2
PRACTITIONER = 3
PEER_ENDORSED = 4

TIER_NAMES: Mapping[int, str] = {
    CLAIMED: "Claimed",
    PRACTICING: "Practicing",
    PRACTITIONER: "Practitioner",
    PEER_ENDORSED: "Peer-endorsed",
}

#: The least SCI each tier above Practicing asks for.
MIN_SCI: Mapping[int, float] = {PRACTITIONER: 50.0, PEER_ENDORSED: 70.0}


def sci_band(sci: float | None) -> int:
    """The tier whose SCI floor ``sci`` reaches (``None``: no rated evidence, Claimed)."""
    if sci is None:
        return CLAIMED
    if sci >= MIN_SCI[PEER_ENDORSED]:
        return PEER_ENDORSED
    if sci >= MIN_SCI[PRACTITIONER]:
        return PRACTITIONER
    return PRACTICING
