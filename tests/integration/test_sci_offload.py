"""The sci service's worker process: jobs run outside the service's process, errors come back,
a dead worker is replaced, stopping ends a job in progress instead of waiting for it, and the
worker ends with its service however the service ends."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from services.sci.offload import ProcessOffload


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie until its parent reaps it counts as gone
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] == "Z"


async def test_a_job_runs_in_another_process_and_its_error_comes_back() -> None:
    offload = ProcessOffload()
    try:
        pid = await offload.run(os.getpid)
        assert pid != os.getpid() and offload.pids == [pid]
        with pytest.raises(ValueError, match="invalid literal"):
            await offload.run(int, "not a number")
        assert await offload.run(os.getpid) == pid  # the process is kept for the next job
    finally:
        await offload.stop()
    assert offload.pids == [] and _gone(pid)


async def test_a_worker_that_died_fails_its_job_and_the_next_job_gets_a_new_one() -> None:
    offload = ProcessOffload()
    try:
        pid = await offload.run(os.getpid)
        job = asyncio.ensure_future(offload.run(time.sleep, 30))
        await asyncio.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            await asyncio.wait_for(job, 10)
        again = await offload.run(os.getpid)
        assert again not in (pid, os.getpid())
    finally:
        await offload.stop()


async def test_stopping_ends_a_job_in_progress_without_waiting_for_it() -> None:
    offload = ProcessOffload()
    pid = await offload.run(os.getpid)
    job = asyncio.ensure_future(offload.run(time.sleep, 60))
    await asyncio.sleep(0.5)
    started = time.monotonic()
    await offload.stop()
    assert time.monotonic() - started < 10 and _gone(pid)
    with pytest.raises(BrokenProcessPool):
        await job


SERVICE = """
import asyncio, os, time
from services.sci.offload import ProcessOffload

async def main():
    offload = ProcessOffload()
    print(await offload.run(os.getpid), flush=True)
    await offload.run(time.sleep, 60)

asyncio.run(main())
"""


async def test_the_worker_does_not_outlive_a_service_killed_outright() -> None:
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVICE, stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[2]
    )
    try:
        assert service.stdout is not None
        worker = int(await asyncio.wait_for(service.stdout.readline(), 30))
        await asyncio.sleep(0.5)  # the worker is in its 60 s job
        assert not _gone(worker)
    finally:
        service.kill()
        await service.wait()
    gone = False
    for _ in range(100):  # the worker checks on its parent every second
        if gone := _gone(worker):
            break
        await asyncio.sleep(0.1)
    if not gone:
        os.kill(worker, signal.SIGKILL)
    assert gone
