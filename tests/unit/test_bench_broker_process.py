"""The benches find their broker's java process in /proc, its memory and its age (bench/broker_process.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.broker_process import age_s, find_broker_pid, status_kib


def fake_proc(root: Path, pid: int, argv: list[str], status: str = "", stat: str = "") -> None:
    entry = root / str(pid)
    entry.mkdir(parents=True)
    (entry / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (entry / "status").write_text(status)
    (entry / "stat").write_text(stat)


def broker_home(tmp_path: Path, port: int) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "server.properties").write_text(f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://x:1\n")
    return home


def test_the_broker_is_the_kafka_process_running_its_own_properties(tmp_path: Path) -> None:
    home, proc = broker_home(tmp_path, 9123), tmp_path / "proc"
    ours = ["java", "-Xmx384m", "-cp", "a.jar", "kafka.Kafka", str(home / "server.properties")]
    other = ["java", "-cp", "a.jar", "kafka.Kafka", "/elsewhere/server.properties"]
    fake_proc(proc, 40, other)
    fake_proc(proc, 41, ours)
    fake_proc(proc, 42, ["python", "-m", "services.sci"])
    (proc / "self").mkdir()
    assert find_broker_pid(home, 9123, proc) == 41
    with pytest.raises(LookupError, match="does not listen on port 9124"):
        find_broker_pid(home, 9124, proc)
    fake_proc(proc, 43, ours)  # two brokers on one properties file: no guess
    with pytest.raises(LookupError, match=r"2 kafka\.Kafka processes"):
        find_broker_pid(home, 9123, proc)


def test_no_broker_running_is_an_error(tmp_path: Path) -> None:
    home, proc = broker_home(tmp_path, 9123), tmp_path / "proc"
    fake_proc(proc, 7, ["java", "kafka.tools.StorageTool", str(home / "server.properties")])
    with pytest.raises(LookupError, match=r"0 kafka\.Kafka"):
        find_broker_pid(home, 9123, proc)


def test_memory_figures_come_from_proc_status(tmp_path: Path) -> None:
    fake_proc(tmp_path, 5, ["java"], status="Name:\tjava\nVmHWM:\t  401234 kB\nVmRSS:\t  390000 kB\n")
    assert status_kib(5, "VmRSS", tmp_path) == 390_000
    assert status_kib(5, "VmHWM", tmp_path) == 401_234
    with pytest.raises(LookupError):
        status_kib(5, "VmSwap", tmp_path)


def test_age_reads_the_start_tick_after_the_command_name(tmp_path: Path) -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    started = int((time.clock_gettime(time.CLOCK_BOOTTIME) - 12.5) * ticks)
    # a command name with spaces and a parenthesis must not shift the fields
    fields = ["S", *["0"] * 18, str(started), "0"]
    fake_proc(tmp_path, 9, ["java"], stat=f"9 (ja va) x) {' '.join(fields)}\n")
    assert age_s(9, tmp_path) == pytest.approx(12.5, abs=0.05)
