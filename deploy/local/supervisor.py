"""The local stack's supervisor: restarts a process of the stack that exits, as Kubernetes would.

``lemma stack up`` starts it last (``python -m deploy.local.supervisor --state-dir <state>``),
detached like the others, with ``run/supervisor.pid`` and ``log/supervisor.log``. It watches
every broker, service replica and the gateway through their pid files (it is not their parent:
``stack up`` started them), a few times a second; one that is gone is started again with the
very same command line, ``LEMMA_INSTANCE`` and port (``deploy/local/launch.py``) after a
back-off (``deploy/local/restarts.py``). Its record (restarts, current pids, back-offs) is in
``run/supervisor.json``. ``lemma stack down`` stops it first, so nothing is restarted while the
stack stops; a restart never runs while ``up`` or ``down`` holds the state folder's lock.

It exits by itself when its state folder or ``stack.json`` is gone, or when its pid file names
another process (a newer supervisor took over): a stack deleted under it is not brought back.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from deploy.local import processes as proc
from deploy.local.config import REPO_ROOT, StackConfig
from deploy.local.launch import command
from deploy.local.lock import try_locked
from deploy.local.plan import SUPERVISOR, ProcessSpec, process_plan
from deploy.local.restarts import STATE_FILE, Tracked, describe_exit, read_state, write_state

INTERVAL = 0.2  # seconds between two looks at every process
HEARTBEAT = 5.0  # the state file is written at least this often


def say(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)


class Supervisor:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.specs: list[ProcessSpec] = process_plan(config, supervised=False)
        self.tracked = {spec.name: Tracked(spec.name) for spec in self.specs}
        self.stopping = False
        self.written = 0.0
        previous = read_state(config.run_dir)  # a supervisor before this one died: keep its counts
        if previous is not None:
            for name, record in previous.processes.items():
                if name in self.tracked:
                    self.tracked[name].restarts = int(record.get("restarts", 0))

    def stop(self, signum: int, _frame: FrameType | None) -> None:
        say(f"signal {signum}: stopping (the processes keep running)")
        self.stopping = True

    def superseded(self) -> str:
        """Why this supervisor should exit, or "" to go on."""
        if not self.config.config_file.exists():
            return f"{self.config.config_file} is gone"
        mine = proc.read_pid_file(self.config.run_dir, SUPERVISOR)
        if mine is not None and mine.pid != os.getpid():
            return f"{self.config.run_dir / 'supervisor.pid'} names pid {mine.pid}"
        return ""

    def look(self, spec: ProcessSpec, now: float) -> bool:
        """One look at one process; restarts it when it is due. True when its record changed."""
        record = self.tracked[spec.name]
        before = record.to_json(now)
        handle = proc.running(self.config.run_dir, spec.name)
        if handle is not None:
            record.seen_alive(handle.pid, now)
            return record.to_json(now) != before
        if record.restart_at is None:
            how = describe_exit(proc.reap(record.pid)) if record.pid else "not running"
            delay = record.seen_dead(now, how)
            say(f"{spec.name} (pid {record.pid}) {how}; restarting it in {delay:.1f}s")
            return True
        if record.due(now):
            self.restart(spec, record, now)
            return True
        return False

    def restart(self, spec: ProcessSpec, record: Tracked, now: float) -> None:
        with try_locked(self.config.state_dir) as mine:
            if not mine:
                return  # `up` or `down` is at work: look again next round
            if (handle := proc.running(self.config.run_dir, spec.name)) is not None:
                record.seen_alive(handle.pid, now)  # someone started it meanwhile
                return
            try:
                argv, env = command(self.config, spec)
                handle = proc.spawn(
                    spec.name,
                    argv,
                    log_dir=self.config.log_dir,
                    run_dir=self.config.run_dir,
                    env=env,
                    cwd=REPO_ROOT,
                )
            except Exception as exc:
                delay = record.start_failed(now, f"could not start: {exc!r}")
                say(f"{spec.name} could not be started ({exc!r}); trying again in {delay:.1f}s")
                return
        record.restarted(handle.pid, now)
        say(f"restarted {spec.name} (pid {handle.pid}, restart {record.restarts})")

    def run(self) -> int:
        say(f"supervising {', '.join(s.name for s in self.specs)} from {self.config.state_dir}")
        while not self.stopping:
            if why := self.superseded():
                say(f"exiting: {why}")
                return 0
            now = time.monotonic()
            changed = False
            for spec in self.specs:
                if self.stopping:
                    break
                changed = self.look(spec, now) or changed
            if changed or time.monotonic() - self.written >= HEARTBEAT:
                self.write(now)
            time.sleep(INTERVAL)
        (self.config.run_dir / STATE_FILE).unlink(missing_ok=True)  # its record ends with it
        return 0

    def write(self, now: float) -> None:
        write_state(self.config.run_dir, self.tracked, now)
        self.written = time.monotonic()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    config = StackConfig.load(args.state_dir)
    if config is None:
        say(f"no stack.json in {args.state_dir}: nothing to supervise")
        return 1
    supervisor = Supervisor(config)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
