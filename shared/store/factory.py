"""Open a store from its URL.

``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (the SQLAlchemy
convention), ``sqlite:///:memory:``, or ``mongodb://host/db``.
"""

from __future__ import annotations

from shared.store.base import Store


def open_store(url: str) -> Store:
    if url.startswith("sqlite:///"):
        from shared.store.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("mongodb://", "mongodb+srv://")):
        from shared.store.mongo import MongoStore

        return MongoStore(url)
    raise ValueError(f"unsupported store URL {url!r} (use sqlite:///path or mongodb://host/db)")
