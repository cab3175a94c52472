"""The local stack: SeaweedFS (S3) -> Tansu (Kafka protocol, log in S3) -> the services -> Caddy.

``start_stack`` starts what is not running yet and waits until every service is ready; on
failure it stops what it started and raises ``StackError``. ``stop_stack`` stops, by pid,
what the pid files name: the gateway, the services, then the broker, then SeaweedFS.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

from deploy.local import processes as proc
from deploy.local import seaweedfs
from deploy.local.binaries import tansu, venv_bin
from deploy.local.config import BUCKET, REPO_ROOT, SERVICES, StackConfig, port_is_free
from deploy.local.credentials import jwt_secret, s3_credentials
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

#: Seconds a process gets to stop after SIGTERM before SIGKILL. SeaweedFS 4.48's filer waits
#: 15 s on a metadata stream it holds to itself before it closes its store and the volume
#: server stops; SIGKILL loses nothing once the broker is stopped (every S3 write is in its
#: files when the request returns), and the durability test restarts after exactly that.
STOP_TIMEOUT = {"gateway": 5.0, "tansu": 10.0, "seaweedfs": 3.0}
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
    return ["seaweedfs", "tansu", *config.services, "gateway"]


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


def _run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion, also when the caller is inside an event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


# --- starting ------------------------------------------------------------------------------


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
            "seaweedfs": list(c.seaweedfs_ports().values()),
            "tansu": [c.kafka_port],
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

    def seaweedfs(self) -> None:
        c = self.config
        weed = venv_bin("weed")
        seaweedfs.data_dir(c).mkdir(parents=True, exist_ok=True)
        seaweedfs.write_s3_config(c, s3_credentials(c.state_dir))
        self.spawn("seaweedfs", seaweedfs.server_argv(weed, c))
        self.wait("seaweedfs", lambda: proc.http_status(c.s3_endpoint) is not None, "S3 answering", 45)
        try:
            seaweedfs.create_bucket(weed, c)
        except RuntimeError as exc:
            raise self.fail("seaweedfs", str(exc)) from exc

    def tansu(self) -> None:
        c = self.config
        creds = s3_credentials(c.state_dir)
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": creds.access_key,
            "AWS_SECRET_ACCESS_KEY": creds.secret_key,
            "AWS_ENDPOINT": c.s3_endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        url = f"tcp://{c.kafka_bootstrap}"
        argv = [tansu(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        self.spawn("tansu", [*argv, "--storage-engine", f"s3://{BUCKET}/"], env)
        self.wait("tansu", lambda: proc.port_open(c.kafka_port), "broker listening", 20)
        self.ensure_topics()

    def ensure_topics(self, timeout: float = 20.0) -> None:
        from shared.bus import ensure_topics

        deadline = time.monotonic() + timeout
        # the broker may still be loading its log from S3: the retries below are expected,
        # so aiokafka's own connection errors are not shown
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        while True:
            try:
                created = _run_async(ensure_topics(self.config.kafka_bootstrap))
            except Exception as exc:
                if time.monotonic() > deadline or not self.live["tansu"].alive():
                    raise self.fail("tansu", f"could not create the topics: {exc!r}") from exc
                time.sleep(0.5)
                continue
            if created:
                self.say(f"created topics {', '.join(created)}")
            return

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
        starter.seaweedfs()
        starter.tansu()
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
    """Stop every process of the stack: gateway, services, broker, SeaweedFS. Returns their names."""
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
        ["tansu"],
        ["seaweedfs"],
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
    if name == "seaweedfs":
        return config.s3_endpoint
    if name == "tansu":
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
            if name == "seaweedfs":
                ready = proc.http_status(url) is not None
            elif name == "tansu":
                ready = proc.port_open(config.kafka_port)
            elif name == "gateway":
                ready = proc.http_status(url + "/") == 200
            else:
                ready = proc.http_status(url + "/readyz", timeout=3.0) == 200
        rows.append(ProcessStatus(name, handle.pid if handle else None, handle is not None, ready, url))
    return rows
