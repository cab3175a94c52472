"""Versions of a projection (pure): which one readers see, which one is being built, and the
hand-over from one to the next.

A rebuild (``lemma replay``) folds the whole log into a new version beside the live one: its
documents live in their own collections (``namespace``) and its offsets under their own
consumer name (``consumer_of``), so readers of the live version never see it. One document per
projection in ``_projection_versions`` says which version is live and what each version is:

- ``building``: the rebuild folds into it from the start of the log;
- ``handover``: the rebuild has caught up with the log's head and stopped; the service takes
  over: it notes how far the live version got (``freeze``), stops folding it (readers still
  read it, unchanged) and folds the new version from where the rebuild left it;
- ``live``: once the new version has folded at least as far as the frozen one on every
  partition, the document flips in one write: readers go over to it, and never see a version
  behind the one they saw;
- ``retired``: the one before, kept until ``lemma projections drop``.

Version 1 keeps the unprefixed collection names and the plain consumer name, so a store made
before versions existed is version 1, live.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

VERSIONS = "_projection_versions"
BUILDING = "building"
HANDOVER = "handover"
LIVE = "live"
RETIRED = "retired"
#: Collections every version shares: the record of the versions themselves.
SHARED = frozenset({VERSIONS})
#: Collections named so hold personal data that is never in the log (a display name, an
#: email): they cannot be rebuilt, so they are not versioned; every version reads the one copy,
#: and erasing it is one delete.
PERSONAL = "personal_"


def unversioned(collection: str) -> bool:
    return collection in SHARED or collection.startswith(PERSONAL)


class VersionError(Exception):
    """An operation the versions' state does not allow (a second rebuild, dropping the live one)."""


def namespace(collection: str, version: int) -> str:
    """The collection ``collection`` of ``version``; version 1 keeps the plain name. Letters,
    digits and underscores only, as every document database takes them."""
    if version == 1 or unversioned(collection):
        return collection
    return f"v{version}__{collection}"


def version_of(name: str) -> tuple[int, str]:
    """(version, collection) of a stored collection name: ``namespace`` undone."""
    match = re.fullmatch(r"v(\d+)__(.+)", name)
    return (int(match.group(1)), match.group(2)) if match else (1, name)


def consumer_of(projection: str, version: int) -> str:
    """The name a version's offsets are kept under (and its rebuild's consumer group)."""
    return projection if version == 1 else f"{projection}.v{version}"


@dataclass(frozen=True)
class Version:
    number: int
    state: str
    started_at: str = ""
    by: str = ""
    #: the live version's offsets when the hand-over began: this one goes live once past them
    freeze: Mapping[str, int] = field(default_factory=dict)
    #: the rebuild folding it (``pid@host``) and when it last said so (Unix time): a rebuild
    #: that has gone quiet for long is taken over by the next ``lemma replay``
    owner: str = ""
    heartbeat: float = 0.0
    #: the version of the rules it was built with (the projection's ``model``; 0: not known)
    model: int = 0

    def to_doc(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "started_at": self.started_at,
            "by": self.by,
            "freeze": dict(self.freeze),
            "owner": self.owner,
            "heartbeat": self.heartbeat,
            "model": self.model,
        }

    @classmethod
    def from_doc(cls, number: int, doc: Mapping[str, Any]) -> Version:
        return cls(
            number=number,
            state=str(doc["state"]),
            started_at=str(doc.get("started_at", "")),
            by=str(doc.get("by", "")),
            freeze=dict(doc.get("freeze", {})),
            owner=str(doc.get("owner", "")),
            heartbeat=float(doc.get("heartbeat", 0.0)),
            model=int(doc.get("model", 0)),
        )


def partition_key(topic: str, partition: int) -> str:
    return f"{topic}[{partition}]"


def parse_partition_key(key: str) -> tuple[str, int]:
    """``partition_key`` undone."""
    topic, _, rest = key.rpartition("[")
    return topic, int(rest.rstrip("]"))


@dataclass(frozen=True)
class Versions:
    """The versions of one projection."""

    projection: str
    live: int = 1
    versions: Mapping[int, Version] = field(default_factory=lambda: {1: Version(1, LIVE)})

    @classmethod
    def from_doc(cls, projection: str, doc: Mapping[str, Any] | None) -> Versions:
        if doc is None:
            return cls(projection)
        return cls(
            projection=projection,
            live=int(doc["live"]),
            versions={int(n): Version.from_doc(int(n), v) for n, v in doc["versions"].items()},
        )

    def to_doc(self) -> dict[str, Any]:
        return {"live": self.live, "versions": {str(n): v.to_doc() for n, v in sorted(self.versions.items())}}

    @property
    def in_progress(self) -> Version | None:
        """The version being built or handed over, if any (there is at most one)."""
        return next((v for v in self.versions.values() if v.state in (BUILDING, HANDOVER)), None)

    def begin(
        self, *, at: str, by: str, owner: str, now: float, stale_s: float, model: int = 0
    ) -> tuple[Versions, Version, bool]:
        """The version a rebuild folds into, and whether it resumes one: a new version, or the
        one being built whose rebuild has not said anything for ``stale_s`` (killed). Refused
        while another rebuild is alive, or while a version waits for the service to take over."""
        current = self.in_progress
        if current is None:
            number = max(self.versions) + 1
            version = Version(number, BUILDING, started_at=at, by=by, owner=owner, heartbeat=now, model=model)
            return replace(self, versions={**self.versions, number: version}), version, False
        if current.state == HANDOVER:
            raise VersionError(
                f"version {current.number} of {self.projection} has caught up and waits for the "
                "service to take it over (it does once it runs)"
            )
        quiet = now - current.heartbeat
        if current.owner != owner and quiet < stale_s:
            raise VersionError(
                f"{self.projection} is being rebuilt already: version {current.number}, started "
                f"{current.started_at} by {current.by}, folded by {current.owner} (last heard "
                f"{quiet:.0f} s ago); wait for it, or run this again once it has stopped"
            )
        resumed = replace(current, owner=owner, heartbeat=now)
        return replace(self, versions={**self.versions, current.number: resumed}), resumed, True

    def beat(self, number: int, owner: str, now: float) -> Versions:
        """The rebuild of ``number`` is alive; refused if another rebuild took it over."""
        version = self.versions[number]
        if version.owner != owner or version.state != BUILDING:
            raise VersionError(
                f"version {number} of {self.projection} is now {version.state}, folded by {version.owner}"
            )
        return replace(self, versions={**self.versions, number: replace(version, heartbeat=now)})

    def hand_over(self, number: int) -> Versions:
        """The rebuild of ``number`` caught up with the log and stopped: the service takes over."""
        version = self.versions[number]
        if version.state != BUILDING:
            raise VersionError(f"version {number} of {self.projection} is {version.state}, not building")
        return replace(self, versions={**self.versions, number: replace(version, state=HANDOVER)})

    def freeze(self, number: int, live_offsets: Mapping[str, int]) -> Versions:
        """The service stopped folding the live version at ``live_offsets``."""
        version = self.versions[number]
        return replace(self, versions={**self.versions, number: replace(version, freeze=dict(live_offsets))})

    def ready(self, number: int, offsets: Mapping[str, int]) -> bool:
        """Whether version ``number``, folded to ``offsets``, is at least as far as the frozen
        live version on every partition (so no reader sees it behind what they saw)."""
        version = self.versions[number]
        return version.state == HANDOVER and all(offsets.get(p, -1) >= o for p, o in version.freeze.items())

    def go_live(self, number: int) -> Versions:
        """Readers go over to ``number``; the version that was live is retired."""
        version = self.versions[number]
        if version.state != HANDOVER:
            raise VersionError(f"version {number} of {self.projection} is {version.state}, not handed over")
        versions = {
            **self.versions,
            self.live: replace(self.versions[self.live], state=RETIRED),
            number: replace(version, state=LIVE, freeze={}),
        }
        return replace(self, live=number, versions=versions)

    def abandon(self, number: int, owner: str) -> Versions:
        """Forget a version its rebuild built only to compare (``lemma replay --verify``)."""
        version = self.versions.get(number)
        if version is None or version.state != BUILDING or version.owner != owner:
            raise VersionError(f"version {number} of {self.projection} is not this rebuild's to abandon")
        return replace(self, versions={n: v for n, v in self.versions.items() if n != number})

    def drop(self, number: int) -> Versions:
        """Forget a retired version (its documents are deleted by the caller)."""
        version = self.versions.get(number)
        if version is None:
            raise VersionError(f"{self.projection} has no version {number}")
        current = self.in_progress
        if current is not None:  # the service or a rebuild writes this document meanwhile
            raise VersionError(
                f"version {current.number} of {self.projection} is {current.state}: drop once it is live"
            )
        if version.state != RETIRED:
            raise VersionError(
                f"version {number} of {self.projection} is {version.state}: only a retired one is dropped"
            )
        return replace(self, versions={n: v for n, v in self.versions.items() if n != number})
