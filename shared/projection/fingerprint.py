"""Is the log still the one a store's offsets were taken from? (Pure: no broker, no store.)

A projection's store keeps, per partition, the offset of the last record it folded. If the
topic is recreated or the broker's data is reset while the store survives, those offsets point
into another log: seeking past them would silently skip records (or, past the log end, fold
nothing until the new log grows past them). So beside each partition's offset the store keeps a
fingerprint, written in the same store write: the cluster id and the offset and digest of the
last record folded. When the consumer is assigned the partition it compares the fingerprint with
the log as it is now (``LogView``) and refuses to fold on any mismatch (``mismatch``).

Kafka clients do not show topic ids, hence the record digest: a recreated topic holds other
records at the same offsets (other event ids, other times), so their digests differ.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

#: The store collection of fingerprints, one document per (consumer, topic, partition).
FINGERPRINTS = "_log_fingerprints"
#: Why a partition is held while its log is checked (not a refusal).
CHECKING = "checking that the log is the one the store folded"


def fingerprint_key(consumer: str, topic: str, partition: int) -> str:
    return f"{consumer}|{topic}|{partition}"


def record_digest(key: bytes | None, value: bytes | None) -> str:
    """A short digest of one record's key and value."""
    h = hashlib.blake2b(digest_size=12)
    for part in (key, value):
        h.update(b"-" if part is None else b"+%d:" % len(part) + part)
    return h.hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """Where the store's position on a partition came from."""

    cluster_id: str  # "" when it was not known (a fold without a broker)
    offset: int  # the last record folded
    digest: str  # of that record

    def to_doc(self) -> dict[str, object]:
        return {"cluster_id": self.cluster_id, "offset": self.offset, "digest": self.digest}

    @classmethod
    def from_doc(cls, doc: dict[str, object]) -> Fingerprint:
        return cls(str(doc["cluster_id"]), int(str(doc["offset"])), str(doc["digest"]))


@dataclass(frozen=True)
class LogView:
    """One partition as the broker shows it now."""

    cluster_id: str
    start: int  # the earliest offset the log still holds
    end: int  # the offset the next record will get
    digest_at: str | None = None  # of the record at the fingerprint's offset; None: no record there
    read: bool = True  # False: that record could not be read in time (nothing to compare)


def mismatch(stored: int, fingerprint: Fingerprint | None, log: LogView) -> str | None:
    """Why the log cannot be the one that ``stored`` (the last folded offset) and ``fingerprint``
    were taken from; None when it can."""
    if stored >= log.end:
        return (
            f"the store has folded up to offset {stored}, but the log ends before it (its next "
            f"offset is {log.end}): the topic was recreated or the broker's data was reset"
        )
    if stored + 1 < log.start:
        return (
            f"the log no longer holds offsets {stored + 1} to {log.start - 1}, which the store has not "
            "folded (retention or deletion removed them)"
        )
    if fingerprint is None:
        return None  # offsets kept before fingerprints were: nothing more to compare
    if fingerprint.cluster_id and log.cluster_id and fingerprint.cluster_id != log.cluster_id:
        return (
            f"the store's offsets were taken from Kafka cluster {fingerprint.cluster_id}, "
            f"but this is cluster {log.cluster_id}"
        )
    if not log.read:
        return None  # the record did not come in time: the offsets fit, the record is not compared
    if log.digest_at is None:
        return f"the record the store folded at offset {fingerprint.offset} is not in the log any more"
    if log.digest_at != fingerprint.digest:
        return (
            f"the record at offset {fingerprint.offset} is not the one the store folded there: "
            "the topic was recreated or the broker's data was reset"
        )
    return None


def folded_under_other_names(stored_topics: Iterable[str], topic: str, base: str) -> list[str]:
    """The topics the store holds offsets of that carry ``topic``'s base name (say
    lemma.sessions.v1) under another prefix: a consumer whose ``LEMMA_KAFKA_PREFIX`` changed
    would fold the other log from its start on top of this state."""
    return sorted({t for t in stored_topics if t != topic and t.endswith(base)})


def recovery_hint(service: str) -> str:
    """What an operator does about a refused partition."""
    return (
        "Nothing is folded from this partition until this is resolved. If the log is right (it was "
        f"recreated on purpose), rebuild the {service} projection from it: stop the service, move its "
        f"store aside (the database LEMMA_STORE_URL names, or <state>/data/{service}.db) and start it "
        "again; it folds the log from the start. Keep the old store: some hold what is not in the log "
        "(display names, the waitlist, session states and ratings). If the store is right, point the "
        "service at the cluster and topics it was folded from (LEMMA_KAFKA_BOOTSTRAP, LEMMA_KAFKA_PREFIX)."
    )
