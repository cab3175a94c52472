"""The local stack: Apache Kafka (one KRaft node) -> the five services -> Caddy.

``start_stack`` starts what is not running yet and waits until every service is ready; on
failure it stops what it started and raises ``StackError``. ``stop_stack`` stops, by pid,
what the pid files name: the gateway, the services, then the broker.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from deploy.local import broker
from deploy.local import processes as proc
from deploy.local.binaries import venv_bin
from deploy.local.config import REPO_ROOT, SERVICES, StackConfig, port_is_free
from deploy.local.credentials import jwt_secret
from deploy.local.gateway import render_caddyfile
from deploy.local.processes import Handle

__all__ = [
    "SERVICES",
    "ProcessStatus",
    "StackConfig",
    "StackError",
    "process_names",
    "running_processes",
    "stack_status",
    "start_stack",
    "stop_stack",
]

Say = Callable[[str], None]

#: Seconds a process gets to stop after SIGTERM before SIGKILL. Kafka shuts down in a few
#: seconds (it closes its log segments and writes a clean-shutdown marker, so the next start
#: skips log recovery); a SIGKILL loses nothing already acknowledged, but recovery is slower.
STOP_TIMEOUT = {"gateway": 5.0, "kafka": 30.0}
SERVICE_STOP_TIMEOUT = 10.0


class StackError(RuntimeError):
    """The stack could not start; ``process`` names the culprit, ``log_tail`` shows why."""

    def __init__(self, message: str, *, process: str = "", log_tail: str = "") -> None:
        super().__init__(message)
        self.process = process
        self.log_tail = log_tail


def _quiet(_: str) -> None:
    return None


def process_names(config: StackConfig) -> list[str]:
    """Every process of the stack, in start order."""
    return ["kafka", *config.services, "gateway"]


def running_processes(config: StackConfig) -> dict[str, Handle]:
    """The processes of the stack that are alive (stale pid files are removed on the way)."""
    found = {name: proc.running(config.run_dir, name) for name in process_names(config)}
    return {name: handle for name, handle in found.items() if handle is not None}


@contextlib.contextmanager
def _locked(config: StackConfig) -> Iterator[None]:
    """One ``up`` or ``down`` at a time per state folder (a second one waits for the first)."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    with (config.state_dir / "stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- starting ------------------------------------------------------------------------------


def broker_config(config: StackConfig) -> broker.BrokerConfig:
    """The stack's Kafka node: its ports, with server.properties and the log under var/kafka/."""
    return broker.BrokerConfig(config.kafka_home, config.kafka_port, config.kafka_controller_port)


class _Starter:
    def __init__(self, config: StackConfig, say: Say) -> None:
        self.config = config
        self.say = say
        self.started: list[Handle] = []
        self.live = running_processes(config)

    def fail(self, name: str, message: str) -> StackError:
        log = self.config.log_dir / f"{name}.log"
        return StackError(message, process=name, log_tail=proc.tail(log))

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Handle | None:
        """Start ``name`` unless it runs already; None when it was running."""
        if name in self.live:
            self.say(f"{name} is running already (pid {self.live[name].pid})")
            return None
        handle = proc.spawn(
            name, argv, log_dir=self.config.log_dir, run_dir=self.config.run_dir, env=env, cwd=REPO_ROOT
        )
        self.started.append(handle)
        self.live[name] = handle
        self.say(f"started {name} (pid {handle.pid})")
        return handle

    def wait(self, name: str, check: Callable[[], bool], what: str, timeout: float) -> None:
        handle = self.live[name]
        try:
            proc.wait_until(check, timeout=timeout, what=what, alive=handle.alive)
        except (TimeoutError, RuntimeError) as exc:
            raise self.fail(name, str(exc)) from exc

    def check_ports(self) -> None:
        c = self.config
        owners: dict[str, list[int]] = {
            "kafka": list(c.kafka_ports().values()),
            "gateway": [c.gateway_port],
            **{name: [port] for name, port in c.service_ports.items()},
        }
        labels = {port: label for label, port in c.ports().items()}
        for name, ports in owners.items():
            if name in self.live:
                continue
            for port in ports:
                if not port_is_free(port):
                    raise StackError(
                        f"port {port} ({labels.get(port, name)}) is in use by another program; "
                        f"stop it, or choose other ports in {c.config_file}",
                        process=name,
                    )

    def kafka(self) -> None:
        c = self.config
        node = broker_config(c)
        if "kafka" not in self.live:
            try:
                first = not node.is_formatted()
                argv = broker.prepare(node)
            except broker.BrokerSetupError as exc:
                raise StackError(str(exc), process="kafka") from exc
            if first:
                self.say(f"formatted the Kafka storage in {node.data_dir}")
            self.spawn("kafka", argv)
        self.wait("kafka", lambda: proc.port_open(c.kafka_port), "broker listening", 60)
        self.ensure_topics()

    def ensure_topics(self, timeout: float = 30.0) -> None:
        alive = self.live["kafka"].alive
        try:
            created = broker.create_topics(self.config.kafka_bootstrap, timeout=timeout, alive=alive)
        except broker.BrokerSetupError as exc:
            raise self.fail("kafka", str(exc)) from exc
        if created:
            self.say(f"created topics {', '.join(created)}")

    def services(self) -> None:
        c = self.config
        secret = os.environ.get("LEMMA_JWT_SECRET") or jwt_secret(c.state_dir)
        for name, port in c.service_ports.items():
            env = {
                **os.environ,
                "LEMMA_PORT": str(port),
                "LEMMA_HOST": "127.0.0.1",
                "LEMMA_KAFKA_BOOTSTRAP": c.kafka_bootstrap,
                "LEMMA_STATE_DIR": str(c.state_dir),
                "LEMMA_ENVIRONMENT": os.environ.get("LEMMA_ENVIRONMENT", "development"),
                "LEMMA_JWT_SECRET": secret,
                "PYTHONUNBUFFERED": "1",
            }
            self.spawn(name, [sys.executable, "-m", f"services.{name}"], env)

    def gateway(self) -> None:
        c = self.config
        caddy_dir = c.state_dir / "caddy"
        caddyfile = c.state_dir / "Caddyfile"
        caddyfile.write_text(render_caddyfile(c.gateway_port, c.service_ports, caddy_dir))
        env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(caddy_dir / "config"),
            "XDG_DATA_HOME": str(caddy_dir / "data"),
        }
        argv = [venv_bin("caddy"), "run", "--config", str(caddyfile), "--adapter", "caddyfile"]
        self.spawn("gateway", argv, env)
        self.wait("gateway", lambda: proc.http_status(c.gateway_url + "/") == 200, "gateway answering", 20)

    def wait_ready(self, timeout: float) -> None:
        c = self.config
        waiting = list(c.services)
        deadline = time.monotonic() + timeout
        while waiting:
            for name in list(waiting):
                if not self.live[name].alive():
                    raise self.fail(name, f"{name} exited before it was ready")
                if proc.http_status(f"{c.service_url(name)}/readyz", timeout=3.0) == 200:
                    waiting.remove(name)
                    self.say(f"{name} is ready")
            if waiting and time.monotonic() > deadline:
                raise self.fail(waiting[0], f"not ready after {timeout:.0f}s: {', '.join(waiting)}")
            if waiting:
                time.sleep(0.2)

    def rollback(self) -> None:
        for handle in reversed(self.started):
            _stop(self.config, [handle], _quiet)


def start_stack(config: StackConfig, *, ready_timeout: float = 60.0, say: Say = _quiet) -> None:
    """Start every process of the stack that is not running and wait until all are ready.

    On failure, stops what this call started and raises ``StackError``.
    """
    with _locked(config):
        _start(config, ready_timeout, say)


def _start(config: StackConfig, ready_timeout: float, say: Say) -> None:
    saved = StackConfig.load(config.state_dir)
    starter = _Starter(config, say)
    if starter.live and saved is not None and saved != config:
        raise StackError(f"a stack with other settings runs from {config.state_dir}; stop it first")
    try:
        config.save()  # first, so a port clash can be fixed by editing it
        starter.check_ports()
        starter.kafka()
        starter.services()
        starter.gateway()
        starter.wait_ready(ready_timeout)
    except BaseException as exc:
        starter.rollback()
        if isinstance(exc, StackError):
            raise
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise StackError(f"the stack did not start: {exc!r}") from exc


# --- stopping ------------------------------------------------------------------------------


def _stop(config: StackConfig, handles: list[Handle], say: Say) -> None:
    """Terminate the processes together, then wait for each (SIGKILL after its timeout)."""
    for handle in handles:
        proc.terminate(handle)
    for handle in handles:
        timeout = STOP_TIMEOUT.get(handle.name, SERVICE_STOP_TIMEOUT)
        clean = proc.finish(handle, timeout)
        proc.remove_pid_file(config.run_dir, handle.name)
        how = "" if clean else f", SIGKILL after {timeout:.0f}s"
        say(f"stopped {handle.name} (pid {handle.pid}{how})")


def stop_stack(config: StackConfig, *, say: Say = _quiet) -> list[str]:
    """Stop every process of the stack: gateway, services, broker. Returns their names."""
    if not config.state_dir.exists():
        return []
    with _locked(config):
        return _stop_all(config, say)


def _stop_all(config: StackConfig, say: Say) -> list[str]:
    live = running_processes(config)
    known = set(process_names(config))
    others = sorted(p.stem for p in config.run_dir.glob("*.pid") if p.stem not in known)
    live.update({n: h for n in others if (h := proc.running(config.run_dir, n)) is not None})
    groups = [
        ["gateway"],
        [*config.services, *others],
        ["kafka"],
    ]
    stopped: list[str] = []
    for group in groups:
        handles = [live[name] for name in group if name in live]
        _stop(config, handles, say)
        stopped.extend(h.name for h in handles)
    return stopped


# --- status --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    pid: int | None
    alive: bool
    ready: bool
    url: str


def _ready_url(config: StackConfig, name: str) -> str:
    if name == "kafka":
        return f"kafka://{config.kafka_bootstrap}"
    if name == "gateway":
        return config.gateway_url
    return config.service_url(name)


def stack_status(config: StackConfig) -> list[ProcessStatus]:
    rows = []
    for name in process_names(config):
        handle = proc.running(config.run_dir, name)
        url = _ready_url(config, name)
        ready = False
        if handle is not None:
            if name == "kafka":
                ready = proc.port_open(config.kafka_port)
            elif name == "gateway":
                ready = proc.http_status(url + "/") == 200
            else:
                ready = proc.http_status(url + "/readyz", timeout=3.0) == 200
        rows.append(ProcessStatus(name, handle.pid if handle else None, handle is not None, ready, url))
    return rows
