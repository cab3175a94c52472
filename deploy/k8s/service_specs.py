"""What each service is given in the cluster: its port, replica counts and the resources the
load and replay benches measured (``SERVICES``), and the check that every pod name its
StatefulSet can give fits ``LEMMA_INSTANCE``."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The pattern ``LEMMA_INSTANCE`` must match (``shared.settings.Settings.instance``).
INSTANCE_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int
    #: HTTP-bound (docs/scaling.md, "Replicas per service"): scaled by a HorizontalPodAutoscaler
    #: between the base's ``replicas`` and ``max_replicas``; the others keep a fixed count.
    http_bound: bool
    replicas: int
    max_replicas: int
    resources: Resources
    #: Why these figures (a comment in the rendered file).
    sizing: str


# Sizing from docs/benchmarks.md, "Load" (run of 2026-12-05, two replicas of every service, CPU
# in cores for both replicas together) and "Replay" (resident memory of the folds at a million
# events). The load bench does not record each service's memory, so requests take the replay
# bench's incremental fold (evidence 177 MiB, sci 243 MiB peak) and limits its rebuild (the
# whole process tree of `lemma replay`: evidence 704 MiB, sci 723 MiB), which an operator may run
# in the pod. CPU limits leave room for a rebuild's worker processes; requests are what the
# busiest measured phase used per replica.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "passport",
        8101,
        http_bound=True,
        replicas=2,
        max_replicas=12,
        resources=Resources("500m", "256Mi", "2", "1Gi"),
        sizing="passport reads 1,000/s: 1.02-1.11 cores for 2 replicas (about 0.55 each); "
        "rating path 200/s: 0.39 cores for 2",
    ),
    ServiceSpec(
        "matching",
        8102,
        http_bound=False,
        replicas=3,
        max_replicas=3,
        resources=Resources("200m", "256Mi", "2", "1Gi"),
        sizing="mix 400/s: 0.26 cores for 2 replicas; rating path 200/s: 0.16; long polls hold "
        "connections, not CPU, and deciders are bounded by matching's partitions (docs/scaling.md)",
    ),
    ServiceSpec(
        "sessions",
        8103,
        http_bound=True,
        replicas=2,
        max_replicas=8,
        resources=Resources("300m", "256Mi", "2", "1Gi"),
        sizing="rating path 200/s: 0.49 cores for 2 replicas (the busiest service of that phase)",
    ),
    ServiceSpec(
        "evidence",
        8104,
        http_bound=True,
        replicas=2,
        max_replicas=6,
        resources=Resources("100m", "256Mi", "2", "1Gi"),
        sizing="rating path 200/s: 0.17 cores for 2 replicas; fold peak 177 MiB, rebuild 704 MiB",
    ),
    ServiceSpec(
        "sci",
        8105,
        http_bound=False,
        replicas=2,
        max_replicas=2,
        resources=Resources("200m", "512Mi", "2", "2Gi"),
        sizing="rating path 200/s: 0.28 cores for 2 replicas; fold peak 243 MiB, rebuild 723 MiB; "
        "the calibration worker adds 78 MiB (1,000 raters) to 391 MiB (30,000 raters). Fixed "
        "count: every replica runs the calibration job (docs/scaling.md)",
    ),
)


def resource_name(service: str) -> str:
    return f"lemma-{service}"


def check_instance_names() -> None:
    """A StatefulSet's pod names (``lemma-<service>-<ordinal>``) fit ``LEMMA_INSTANCE``."""
    for s in SERVICES:
        longest = f"{resource_name(s.name)}-{max(s.max_replicas, s.replicas) - 1}"
        if not re.match(INSTANCE_PATTERN, longest):
            raise ValueError(f"pod name {longest!r} does not fit LEMMA_INSTANCE {INSTANCE_PATTERN}")
