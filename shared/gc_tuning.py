"""The garbage collector's thresholds for processes that fold many events.

CPython starts a collection of the youngest generation every 700 allocations (net of
deallocations). A fold holds many objects at once (a consumed batch of decoded events, the
documents it loads; a rebuild's window of documents), so at that pace the collector walks
them over and over: measured on the sci and evidence folds, decoding took 2.4x as long with
a window held (11.5 against 4.7 us an event) and a rebuild ran at 0.6x. The folds make no
reference cycles of their own (documents are plain JSON trees, freed by reference counting),
so collecting rarely loses nothing; ``gc.freeze`` first moves everything built at start-up
(modules, the catalog, the app) out of the collector's way for good.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

#: Allocations between two collections of the youngest generation (CPython's default: 700).
YOUNG = 50_000


def tune_for_folding() -> None:
    """Freeze what exists now and collect the youngest generation every ``YOUNG`` allocations."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)


@contextlib.contextmanager
def folding() -> Iterator[None]:
    """``tune_for_folding`` for a while (a rebuild in a process that does other things after)."""
    before = gc.get_threshold()
    tune_for_folding()
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
