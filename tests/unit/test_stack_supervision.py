"""The supervisor's pure parts: the back-off schedule, a process's restart record, the state
file; and the status a scaled-out stack prints (table and JSON)."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from deploy.local.config import StackConfig
from deploy.local.restarts import (
    FIRST_DELAY,
    MAX_DELAY,
    RESET_AFTER,
    Tracked,
    backoff_delay,
    describe_exit,
    read_state,
    write_state,
)
from deploy.local.status import COLUMNS, ProcessStatus, status_json, table_rows


def test_the_back_off_doubles_from_half_a_second_to_thirty() -> None:
    assert [backoff_delay(n) for n in range(1, 10)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff_delay(0) == 0.0
    assert backoff_delay(10_000) == MAX_DELAY


@given(st.integers(min_value=1, max_value=500))
def test_the_back_off_never_shrinks_and_stays_within_its_bounds(failures: int) -> None:
    assert FIRST_DELAY <= backoff_delay(failures) <= MAX_DELAY
    assert backoff_delay(failures + 1) >= backoff_delay(failures)


def test_exits_in_a_row_back_off_further_and_a_long_run_starts_over() -> None:
    t = Tracked("passport-2")
    t.seen_alive(100, now=0.0)
    assert t.seen_dead(now=10.0, how="signal 9") == 0.5
    assert t.seen_dead(now=10.1) is None  # already scheduled: not news, no second count
    assert not t.due(10.2) and t.due(10.5)
    t.restarted(101, now=10.5)
    assert (t.restarts, t.pid, t.restart_at) == (1, 101, None)
    assert t.seen_dead(now=11.0) == 1.0  # died again at once: twice the wait
    t.restarted(102, now=12.0)
    assert t.seen_dead(now=12.5) == 2.0
    t.restarted(103, now=14.5)
    t.seen_alive(103, now=14.5 + RESET_AFTER - 1)
    assert t.failures == 3
    t.seen_alive(103, now=14.5 + RESET_AFTER)
    assert t.failures == 0  # stayed up long enough: the next exit is the first again
    assert t.seen_dead(now=200.0) == 0.5
    assert t.restarts == 3 and t.last_exit == "exited"


def test_a_process_started_by_someone_else_is_adopted_not_counted() -> None:
    t = Tracked("gateway")
    t.seen_alive(100, now=0.0)
    t.seen_dead(now=1.0)
    t.seen_alive(200, now=1.2)  # `stack up` started it before the back-off ran out
    assert (t.pid, t.restarts, t.restart_at) == (200, 0, None)


def test_a_restart_that_fails_to_start_waits_longer() -> None:
    t = Tracked("kafka-2")
    t.seen_dead(now=0.0)
    assert t.start_failed(now=0.5, why="could not start: java missing") == 1.0
    assert t.last_exit == "could not start: java missing" and t.due(1.5)


def test_exit_descriptions() -> None:
    assert describe_exit(-9) == "signal 9"
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(None) == "exited"


def test_the_state_file_is_read_back_as_written(tmp_path: Path) -> None:
    assert read_state(tmp_path) is None
    t = Tracked("sci-2", pid=42, restarts=2)
    waiting = Tracked("kafka-3", pid=None, restarts=1, restart_at=13.0, failures=2)
    write_state(tmp_path, {"sci-2": t, "kafka-3": waiting}, now=10.0, pid=4242)
    state = read_state(tmp_path)
    assert state is not None and state.pid == 4242
    assert state.restarts("sci-2") == 2 and state.restarts("kafka-3") == 1
    assert state.restarts("not-there") == 0
    assert state.processes["kafka-3"]["restart_in_s"] == 3.0
    assert state.processes["sci-2"]["pid"] == 42
    assert not list(tmp_path.glob("*.tmp"))
    (tmp_path / "supervisor.json").write_text("{half a file")
    assert read_state(tmp_path) is None


def rows() -> list[ProcessStatus]:
    return [
        ProcessStatus("kafka-1", 10, True, True, "kafka://127.0.0.1:9092", "broker", None, 1, 9092, 0),
        ProcessStatus(
            "passport-2", 11, True, False, "http://127.0.0.1:8111", "service", "passport", 2, 8111, 1
        ),
        ProcessStatus("gateway", None, False, False, "http://127.0.0.1:8000", "gateway", None, None, 8000, 0),
        ProcessStatus("supervisor", 12, True, True, "/var/log/supervisor.log", "supervisor"),
    ]


def test_the_status_table_shows_role_instance_pid_port_readiness_and_restarts() -> None:
    cells = table_rows(rows())
    assert all(len(row) == len(COLUMNS) for row in cells)
    assert cells[1] == ("passport-2", "service", "2", "11", "8111", "yes", "no", "1")
    assert cells[2] == ("gateway", "gateway", "-", "-", "8000", "no", "no", "0")
    assert cells[3][:5] == ("supervisor", "supervisor", "-", "12", "-")


def test_the_status_json_names_every_process_for_a_script_to_pick_one(tmp_path: Path) -> None:
    config = StackConfig(state_dir=tmp_path, brokers=3, replicas=2)
    shown = json.loads(json.dumps(status_json(config, rows())))
    assert shown["brokers"] == 3 and shown["replicas"] == 2
    assert (shown["replication_factor"], shown["min_insync_replicas"]) == (3, 2)
    assert shown["kafka_bootstrap"] == config.kafka_bootstrap and shown["running"] is True
    replica = next(p for p in shown["processes"] if p["name"] == "passport-2")
    assert replica == {
        "name": "passport-2",
        "pid": 11,
        "alive": True,
        "ready": False,
        "url": "http://127.0.0.1:8111",
        "role": "service",
        "service": "passport",
        "instance": 2,
        "port": 8111,
        "restarts": 1,
    }
