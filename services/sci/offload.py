"""A worker process for the sci service's heavy pure work: calibrating a skill and re-scoring it.

Not a thread: ``calibrate`` is pure Python and holds the GIL, so a thread running it takes the
event loop's turns. Measured beside it, a fold batch that needs 2.5 s of CPU took 13 s, and the
consumer's heartbeats, ``/metrics`` and ``/readyz`` waited as long. In a process it runs on
another core and the loop only pickles its arguments and result.

One spawned process (a fork would copy the loop, the store's connection and the consumer's
sockets), started on first use and kept for the next job. ``stop`` terminates it rather than
waiting: a calibration over a large skill takes a minute, and a stopping service must not wait
for a result it will not use. A process that died (killed, out of memory) fails its job; the
next job starts a new one. The process watches its parent and exits when the service is gone,
however it went (SIGKILL included), so no calibration outlives its service.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from shared.parent_watch import exit_with_parent

log = logging.getLogger(__name__)

R = TypeVar("R")


class ProcessOffload:
    """Runs a picklable, module-level function in the service's worker process."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def run(self, fn: Callable[..., R], *args: object) -> R:
        """``fn(*args)`` in the worker process; its exception is raised here."""
        pool = self._pool
        if pool is None:
            spawn = multiprocessing.get_context("spawn")
            pool = self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=spawn, initializer=exit_with_parent
            )
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except BrokenProcessPool:
            log.warning("the sci worker process died; the next job starts a new one")
            if self._pool is pool:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise

    @property
    def pids(self) -> list[int]:
        """The worker process's pid while it runs (for the tests and the operator)."""
        pool = self._pool
        # no public view of the pool's processes
        return sorted(pool._processes) if pool is not None else []

    async def start(self) -> None:
        """Nothing to do: the process starts with the first job."""

    async def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # ProcessPoolExecutor.terminate_workers() comes with Python 3.14
        for process in list(pool._processes.values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
