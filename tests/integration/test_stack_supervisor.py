"""The supervisor's loop on stand-in processes (sleepers named like the stack's): a process
killed with SIGKILL is started again under the same name, counted, and recorded in
``supervisor.json``; nothing is restarted while ``up`` or ``down`` holds the lock; the
supervisor goes away when its stack does. Seconds, no broker."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local import processes as proc
from deploy.local import supervisor as supervisor_module
from deploy.local.config import StackConfig
from deploy.local.launch import Command
from deploy.local.lock import locked
from deploy.local.plan import ProcessSpec, process_plan
from deploy.local.restarts import read_state

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def sleeper(_config: StackConfig, _spec: ProcessSpec) -> Command:
    return list(SLEEPER), None


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackConfig]:
    """A saved stack whose every process is a sleeper; all of them stopped at the end."""
    monkeypatch.setattr(supervisor_module, "command", sleeper)
    config = StackConfig.with_free_ports(tmp_path / "state", replicas=2)
    config.save()
    earlier = set(proc._CHILDREN)  # another test's processes are that test's to answer for
    try:
        for spec in process_plan(config, supervised=False):
            proc.spawn(spec.name, SLEEPER, log_dir=config.log_dir, run_dir=config.run_dir)
        yield config
    finally:
        for pid_file in config.run_dir.glob("*.pid"):
            if (handle := proc.read_pid_file(config.run_dir, pid_file.stem)) is not None:
                proc.terminate(handle)
                proc.finish(handle, 5.0)
        # every sleeper ever started, the restarted ones included, is gone
        assert not [pid for pid in set(proc._CHILDREN) - earlier if proc.is_alive(pid)]


def run_in_thread(supervisor: supervisor_module.Supervisor) -> threading.Thread:
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    return thread


def kill(config: StackConfig, name: str) -> int:
    handle = proc.read_pid_file(config.run_dir, name)
    assert handle is not None and handle.alive()
    os.kill(handle.pid, signal.SIGKILL)
    proc.wait_gone(handle, 5.0)
    return handle.pid


def restarted(config: StackConfig, name: str, old_pid: int, count: int) -> bool:
    state = read_state(config.run_dir)
    handle = proc.running(config.run_dir, name)
    return (
        state is not None
        and state.restarts(name) == count
        and handle is not None
        and handle.pid != old_pid
        and state.processes[name]["pid"] == handle.pid
    )


def test_a_killed_process_comes_back_under_its_name_and_is_counted(stand_ins: StackConfig) -> None:
    config = stand_ins
    supervisor = supervisor_module.Supervisor(config)
    thread = run_in_thread(supervisor)
    try:
        proc.wait_until(lambda: read_state(config.run_dir) is not None, timeout=5, what="state written")
        old = kill(config, "matching-2")
        proc.wait_until(lambda: restarted(config, "matching-2", old, 1), timeout=5, what="restart")
        record = read_state(config.run_dir)
        assert record is not None and record.processes["matching-2"]["exits_in_a_row"] == 1
        assert record.restarts("matching-1") == 0

        # while `up` or `down` holds the lock, nothing is restarted; then it is
        with locked(config.state_dir):
            old = kill(config, "gateway")
            due = supervisor.tracked["gateway"].due
            proc.wait_until(lambda: due(time.monotonic()), timeout=5, what="restart due")
            time.sleep(0.6)
            assert proc.running(config.run_dir, "gateway") is None
        proc.wait_until(lambda: restarted(config, "gateway", old, 1), timeout=5, what="gateway restart")

        # killed again at once: the back-off doubles
        old = kill(config, "matching-2")
        seen = supervisor.tracked["matching-2"]
        proc.wait_until(lambda: seen.restart_at is not None, timeout=5, what="exit seen")
        assert supervisor.tracked["matching-2"].failures == 2
        proc.wait_until(lambda: restarted(config, "matching-2", old, 2), timeout=5, what="second restart")
    finally:
        supervisor.stopping = True
        thread.join(5)
    assert not thread.is_alive()
    assert read_state(config.run_dir) is None  # its record ends with it
    log = (config.log_dir / "matching-2.log").read_text()
    assert log.count("starting matching-2") == 3  # the same log, appended by every start


def test_the_supervisor_leaves_when_its_stack_is_gone(stand_ins: StackConfig) -> None:
    config = stand_ins
    supervisor = supervisor_module.Supervisor(config)
    thread = run_in_thread(supervisor)
    config.config_file.unlink()
    thread.join(5)
    assert not thread.is_alive()
    kill(config, "sci-1")
    assert proc.running(config.run_dir, "sci-1") is None  # nobody brought it back


def test_a_newer_supervisor_takes_over(stand_ins: StackConfig) -> None:
    config = stand_ins
    other = proc.spawn("supervisor", SLEEPER, log_dir=config.log_dir, run_dir=config.run_dir)
    assert other.pid != os.getpid()
    supervisor = supervisor_module.Supervisor(config)
    thread = run_in_thread(supervisor)
    thread.join(5)
    assert not thread.is_alive()
