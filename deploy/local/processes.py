"""Start, find and stop the stack's processes by pid; wait for ports and HTTP answers.

Each process runs in its own session (its own process group), logs to ``<state>/log/<name>.log``
and has a pid file ``<state>/run/<name>.pid``: the pid on the first line, the process start
time (from ``/proc``) on the second, so a pid the kernel has since given to another program
is never mistaken for ours (and never signalled).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

#: Processes this Python process started, kept so they are reaped (no zombies, no warnings).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class Handle:
    """A process of the stack as its pid file records it."""

    name: str
    pid: int
    started: str  # /proc/<pid>/stat start time, "" when unknown

    def alive(self) -> bool:
        return is_alive(self.pid, self.started)


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its ")" are plain.
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> str:
    stat = _proc_stat(pid)
    return stat[19] if stat else ""


def is_alive(pid: int, started: str = "") -> bool:
    """True when ``pid`` runs (not a zombie) and, if ``started`` is known, is that same process."""
    stat = _proc_stat(pid)
    if stat is None or (started and stat[19] != started):
        return False
    child = _CHILDREN.get(pid)
    if child is not None:
        # waitpid succeeds only once every thread has exited and the sockets are closed.
        return child.poll() is None
    if stat[0] in ("Z", "X"):
        # A zombie main thread whose other threads still exit (and hold the sockets) is not gone yet.
        try:
            return len(os.listdir(f"/proc/{pid}/task")) > 1
        except OSError:
            return False
    return True


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_dir: Path,
    run_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Handle:
    """Start ``argv`` in a new session, output appended to its log, and write its pid file."""
    log_dir.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"{name}.log").open("ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    handle = Handle(name, proc.pid, start_time(proc.pid))
    (run_dir / f"{name}.pid").write_text(f"{handle.pid}\n{handle.started}\n")
    return handle


def read_pid_file(run_dir: Path, name: str) -> Handle | None:
    try:
        lines = (run_dir / f"{name}.pid").read_text().split()
        return Handle(name, int(lines[0]), lines[1] if len(lines) > 1 else "")
    except (OSError, ValueError, IndexError):
        return None


def remove_pid_file(run_dir: Path, name: str) -> None:
    (run_dir / f"{name}.pid").unlink(missing_ok=True)


def running(run_dir: Path, name: str) -> Handle | None:
    """The live process of ``name``; a pid file whose process is gone is removed."""
    handle = read_pid_file(run_dir, name)
    if handle is None:
        remove_pid_file(run_dir, name)
        return None
    if not handle.alive():
        remove_pid_file(run_dir, name)
        return None
    return handle


def _signal(handle: Handle, sig: signal.Signals) -> None:
    if not handle.alive():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(handle.pid) == handle.pid:
            os.killpg(handle.pid, sig)  # its whole session: it leads its own group
        else:
            os.kill(handle.pid, sig)


def _reap(pid: int) -> None:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(pid, None)


def reap(pid: int) -> int | None:
    """How a process this one started ended (its exit code, -N for signal N), once it has;
    None while it runs or when another process started it (its parent reaps it)."""
    child = _CHILDREN.get(pid)
    if child is None or child.poll() is None:
        return None
    _CHILDREN.pop(pid, None)
    return child.returncode


def wait_gone(handle: Handle, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not handle.alive():
            _reap(handle.pid)
            return True
        time.sleep(0.05)
    return not handle.alive()


def terminate(handle: Handle) -> None:
    """Ask a process to stop (SIGTERM to its process group)."""
    _signal(handle, signal.SIGTERM)


def finish(handle: Handle, timeout: float) -> bool:
    """Wait for a terminated process; SIGKILL it after ``timeout`` s. True when it stopped by itself."""
    if wait_gone(handle, timeout):
        return True
    _signal(handle, signal.SIGKILL)
    wait_gone(handle, 5.0)
    return False


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The status code ``url`` answers with, or None when nothing answers."""
    try:
        return httpx.get(url, timeout=timeout).status_code
    except httpx.HTTPError:
        return None


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    interval: float = 0.1,
) -> None:
    """Poll ``check`` until true; raise ``TimeoutError`` after ``timeout`` s, ``RuntimeError``
    as soon as ``alive`` says the process that should answer has exited."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if alive is not None and not alive():
            raise RuntimeError(f"{what}: the process exited")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


def tail(path: Path, lines: int = 20) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16_384))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
