"""The projection store: one small interface, several back ends (SQLite, MongoDB, memory)."""

from shared.store.base import Change, OutboxRecord, PartitionOffsets, Store
from shared.store.factory import open_store

__all__ = ["Change", "OutboxRecord", "PartitionOffsets", "Store", "open_store"]
