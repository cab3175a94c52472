"""The local stack: Apache Kafka (one KRaft node, or a cluster) -> every replica of the five
services -> Caddy, and a supervisor that restarts what exits.

``start_stack`` starts what is not running yet and waits until every replica is ready; on
failure it stops what it started and raises ``StackError``. ``stop_stack`` stops, by pid,
what the pid files name: the supervisor first (so nothing is restarted meanwhile), the
gateway, the services, then the brokers.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from deploy.local import cluster, launch, plan, prometheus
from deploy.local import processes as proc
from deploy.local.broker import BrokerConfig, BrokerSetupError
from deploy.local.config import REPO_ROOT, SERVICES, StackConfig, port_is_free
from deploy.local.lock import locked
from deploy.local.plan import ProcessSpec, process_plan
from deploy.local.processes import Handle
from deploy.local.status import ProcessStatus, stack_status

__all__ = [
    "SERVICES",
    "ProcessStatus",
    "StackConfig",
    "StackError",
    "broker_config",
    "process_names",
    "running_processes",
    "stack_status",
    "start_stack",
    "stop_stack",
]

Say = Callable[[str], None]

#: Seconds a process gets to stop after SIGTERM before SIGKILL, by role. Kafka shuts down in a
#: few seconds (it closes its log segments and writes a clean-shutdown marker, so the next start
#: skips log recovery); a SIGKILL loses nothing already acknowledged, but recovery is slower.
STOP_TIMEOUT = {"gateway": 5.0, "broker": 30.0, "supervisor": 5.0, "service": 10.0, "prometheus": 10.0}


class StackError(RuntimeError):
    """The stack could not start; ``process`` names the culprit, ``log_tail`` shows why."""

    def __init__(self, message: str, *, process: str = "", log_tail: str = "") -> None:
        super().__init__(message)
        self.process = process
        self.log_tail = log_tail


def _quiet(_: str) -> None:
    return None


def process_names(config: StackConfig, *, supervised: bool = True) -> list[str]:
    """Every process of the stack, in start order."""
    return [spec.name for spec in process_plan(config, supervised=supervised)]


def running_processes(config: StackConfig) -> dict[str, Handle]:
    """The processes of the stack that are alive (stale pid files are removed on the way)."""
    found = {name: proc.running(config.run_dir, name) for name in process_names(config)}
    return {name: handle for name, handle in found.items() if handle is not None}


def all_running(config: StackConfig) -> dict[str, Handle]:
    """Every live process with a pid file in the state folder, whatever shape started it
    (this shape's in start order, then the others)."""
    if not config.run_dir.exists():
        return {}
    known = process_names(config)
    names = known + sorted({p.stem for p in config.run_dir.glob("*.pid")} - set(known))
    found = {name: proc.running(config.run_dir, name) for name in names}
    return {name: handle for name, handle in found.items() if handle is not None}


def broker_config(config: StackConfig) -> BrokerConfig:
    """The stack's first Kafka node (its only one by default): ports, properties, log folder."""
    return cluster.nodes(config)[0].config


# --- starting ------------------------------------------------------------------------------


def _listening(port: int) -> Callable[[], bool]:
    return lambda: proc.port_open(port)


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
        labels = {port: label for label, port in c.ports().items()}
        owners: dict[str, list[int]] = {spec.name: [spec.port] for spec in plan.services(c) if spec.port}
        owners["gateway"] = [c.gateway_port]
        if c.prometheus:
            owners[plan.PROMETHEUS] = [c.prometheus_port]
        for node, port, controller in c.kafka_nodes:
            owners[cluster.broker_name(node, c.brokers)] = [port, controller]
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
        nodes = plan.brokers(c)
        if any(spec.name not in self.live for spec in nodes):
            try:
                first = cluster.formatted_brokers(c.kafka_home) is None
                argvs = cluster.prepare(c)
            except BrokerSetupError as exc:
                raise StackError(str(exc), process=nodes[0].name) from exc
            if first:
                self.say(f"formatted the Kafka storage of {c.brokers} node(s) in {c.kafka_home}")
            for spec in nodes:
                self.spawn(spec.name, argvs[spec.name])
        for spec in nodes:
            self.wait(spec.name, _listening(spec.port or 0), f"{spec.name} listening", 60)
        self.ensure_topics([spec.name for spec in nodes])

    def ensure_topics(self, names: list[str], timeout: float = 60.0) -> None:
        def alive() -> bool:
            return all(self.live[name].alive() for name in names)

        try:
            created = cluster.create_topics(self.config, timeout=timeout, alive=alive)
        except BrokerSetupError as exc:
            dead = [name for name in names if not self.live[name].alive()]
            raise self.fail((dead or names)[0], str(exc)) from exc
        if created:
            rf, isr = self.config.replication_factor, self.config.min_insync_replicas
            self.say(f"created topics {', '.join(created)} (replication {rf}, min ISR {isr})")

    def services(self) -> None:
        for spec in plan.services(self.config):
            argv, env = launch.command(self.config, spec)
            self.spawn(spec.name, argv, env)

    def gateway(self) -> None:
        c = self.config
        launch.write_caddyfile(c)
        argv, env = launch.command(c, ProcessSpec(plan.GATEWAY, "gateway", c.gateway_port))
        self.spawn(plan.GATEWAY, argv, env)
        self.wait(plan.GATEWAY, lambda: proc.http_status(c.gateway_url + "/") == 200, "gateway answering", 20)

    def prometheus(self) -> None:
        c = self.config
        if not c.prometheus:
            return
        prometheus.write_config(c)
        argv, env = launch.command(c, ProcessSpec(plan.PROMETHEUS, "prometheus", c.prometheus_port))
        self.spawn(plan.PROMETHEUS, argv, env)
        ready = prometheus.url(c) + "/-/ready"
        self.wait(plan.PROMETHEUS, lambda: proc.http_status(ready) == 200, "Prometheus ready", 30)

    def wait_ready(self, timeout: float) -> None:
        waiting = plan.services(self.config)
        deadline = time.monotonic() + timeout
        while waiting:
            for spec in list(waiting):
                if not self.live[spec.name].alive():
                    raise self.fail(spec.name, f"{spec.name} exited before it was ready")
                if proc.http_status(f"http://127.0.0.1:{spec.port}/readyz", timeout=3.0) == 200:
                    waiting.remove(spec)
                    self.say(f"{spec.name} is ready")
            if waiting and time.monotonic() > deadline:
                names = ", ".join(s.name for s in waiting)
                raise self.fail(waiting[0].name, f"not ready after {timeout:.0f}s: {names}")
            if waiting:
                time.sleep(0.2)

    def supervisor(self) -> None:
        argv, env = launch.command(self.config, ProcessSpec(plan.SUPERVISOR, "supervisor"))
        self.spawn(plan.SUPERVISOR, argv, env)

    def rollback(self) -> None:
        for handle in reversed(self.started):
            _stop(self.config, [handle], _quiet)


def start_stack(
    config: StackConfig, *, ready_timeout: float = 60.0, say: Say = _quiet, supervise: bool = True
) -> None:
    """Start every process of the stack that is not running and wait until all are ready;
    then the supervisor (unless ``supervise`` is false).

    On failure, stops what this call started and raises ``StackError``.
    """
    with locked(config.state_dir):
        _start(config, ready_timeout, say, supervise)


def _start(config: StackConfig, ready_timeout: float, say: Say, supervise: bool) -> None:
    saved = StackConfig.load(config.state_dir)
    starter = _Starter(config, say)
    others = set(all_running(config)) - set(starter.live)
    if (starter.live or others) and saved is not None and saved != config:
        raise StackError(
            f"a stack with other settings ({saved.brokers} broker(s), {saved.replicas} replica(s) "
            f"of each service) runs from {config.state_dir}; stop it first (make stop)"
        )
    try:
        cluster.check_shape(config)  # before stack.json records a shape the log cannot take
        config.save()  # first, so a port clash can be fixed by editing it
        starter.check_ports()
        starter.kafka()
        starter.services()
        starter.gateway()
        starter.wait_ready(ready_timeout)
        starter.prometheus()
        if supervise:
            starter.supervisor()
    except BaseException as exc:
        starter.rollback()
        if isinstance(exc, StackError):
            raise
        if isinstance(exc, cluster.ClusterShapeError):
            raise StackError(str(exc), process="kafka") from exc
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise StackError(f"the stack did not start: {exc!r}") from exc


# --- stopping ------------------------------------------------------------------------------


def _stop(config: StackConfig, handles: list[Handle], say: Say) -> None:
    """Terminate the processes together, then wait for each (SIGKILL after its timeout)."""
    for handle in handles:
        proc.terminate(handle)
    for handle in handles:
        timeout = STOP_TIMEOUT[plan.role_of(handle.name)]
        clean = proc.finish(handle, timeout)
        proc.remove_pid_file(config.run_dir, handle.name)
        how = "" if clean else f", SIGKILL after {timeout:.0f}s"
        say(f"stopped {handle.name} (pid {handle.pid}{how})")


def stop_stack(config: StackConfig, *, say: Say = _quiet) -> list[str]:
    """Stop every process of the stack: supervisor, Prometheus, gateway, services, brokers.
    Returns their names."""
    if not config.state_dir.exists():
        return []
    with locked(config.state_dir):
        return _stop_all(config, say)


def _stop_all(config: StackConfig, say: Say) -> list[str]:
    # every pid file, also those of another shape's processes (a stack.json edited meanwhile)
    live = all_running(config)
    stopped: list[str] = []
    for role in ("supervisor", "prometheus", "gateway", "service", "broker"):
        handles = [handle for name, handle in live.items() if plan.role_of(name) == role]
        _stop(config, handles, say)
        stopped.extend(h.name for h in handles)
    return stopped
