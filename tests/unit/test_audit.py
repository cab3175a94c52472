"""The dependency audit (``deploy/audit.py``, ``make audit``): a known vulnerability fails it,
a clean set passes, and an advisory service that cannot be asked is reported as "not audited"
(exit 2, or a loud pass with ``--if-unreachable warn``), never as clean.

These are tests of our wiring, not of the advisories: a unit test must not depend on OSV
(api.osv.dev) being reachable, so pip-audit is pointed (``--osv-url``) at a local server speaking OSV's query
API. It answers with a real advisory, GHSA-cpwx-vrp4-4pq7 (CVE-2025-27516, the Jinja sandbox
breakout fixed in 3.1.6), for the versions it affects, so a pin of jinja2 3.1.4 must fail the
audit and the lock's 3.1.6 must pass it.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from deploy.audit import Outcome, judge

ROOT = Path(__file__).resolve().parents[2]

JINJA = {"ecosystem": "PyPI", "name": "jinja2"}
JINJA_SANDBOX_BREAKOUT: dict[str, Any] = {
    "schema_version": "1.6.0",
    "id": "GHSA-cpwx-vrp4-4pq7",
    "aliases": ["CVE-2025-27516"],
    "summary": "Jinja2 vulnerable to sandbox breakout through attr filter selecting format method",
    "published": "2025-03-05T20:40:14Z",
    "affected": [
        {
            "package": JINJA,
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.1.6"}]}],
        }
    ],
}


@dataclass
class FakeOsv:
    url: str
    advisories: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    asked: list[str] = field(default_factory=list)


def affects(advisory: dict[str, Any], name: str, version: str) -> bool:
    for affected in advisory["affected"]:
        if affected["package"] != {"ecosystem": "PyPI", "name": name}:
            continue
        for event_range in affected["ranges"]:
            events = {k: v for event in event_range["events"] for k, v in event.items()}
            low = Version(events.get("introduced", "0"))
            if low <= Version(version) and (
                "fixed" not in events or Version(version) < Version(events["fixed"])
            ):
                return True
    return False


@pytest.fixture
def osv() -> Iterator[FakeOsv]:
    """A local endpoint answering OSV's POST /v1/query: {"vulns": [...]} or {} when none."""
    fake = FakeOsv(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            name, version = query["package"]["name"], query["version"]
            fake.asked.append(f"{name}=={version}")
            vulns = [a for a in fake.advisories if affects(a, name, version)]
            body = json.dumps({"vulns": vulns} if vulns else {}).encode()
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield fake
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/query"


def env() -> dict[str, str]:
    return {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def audit(tmp_path: Path, pins: str, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(pins)
    argv = [sys.executable, "-m", "deploy.audit", str(requirements), "--report", str(tmp_path / "audit.json")]
    argv += ["--osv-url", url, "--timeout", "5", "--cache-dir", str(tmp_path / "cache"), *extra]
    return subprocess.run(argv, capture_output=True, text=True, env=env(), cwd=ROOT, timeout=120)


def test_a_known_vulnerable_pin_fails_the_audit(tmp_path: Path, osv: FakeOsv) -> None:
    osv.advisories.append(JINJA_SANDBOX_BREAKOUT)
    done = audit(tmp_path, "jinja2==3.1.4\nmarkupsafe==3.0.3\n", osv.url)
    assert done.returncode == Outcome.VULNERABLE.value, done.stdout + done.stderr
    assert "jinja2 3.1.4: CVE-2025-27516 (GHSA-cpwx-vrp4-4pq7, fixed in 3.1.6)" in done.stderr
    assert sorted(osv.asked) == ["jinja2==3.1.4", "markupsafe==3.0.3"]
    report = json.loads((tmp_path / "audit.json").read_text())
    assert [d["name"] for d in report["dependencies"] if d["vulns"]] == ["jinja2"]


def test_the_fixed_version_passes_against_the_same_advisory(tmp_path: Path, osv: FakeOsv) -> None:
    osv.advisories.append(JINJA_SANDBOX_BREAKOUT)
    done = audit(tmp_path, "# a comment\njinja2==3.1.6\nmarkupsafe==3.0.3\n", osv.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 packages audited, no known vulnerabilities" in done.stdout


def test_an_unreachable_service_is_not_a_clean_audit(tmp_path: Path) -> None:
    done = audit(tmp_path, "jinja2==3.1.6\n", closed_port_url())
    assert done.returncode == Outcome.UNAUDITED.value, done.stdout + done.stderr
    assert "DEPENDENCY AUDIT NOT DONE" in done.stderr and "Connection refused" in done.stderr
    assert "no known vulnerabilities" not in done.stdout + done.stderr


def test_warn_passes_an_unreachable_service_but_says_so(tmp_path: Path) -> None:
    done = audit(tmp_path, "jinja2==3.1.6\n", closed_port_url(), "--if-unreachable", "warn")
    assert done.returncode == 0
    assert "DEPENDENCY AUDIT NOT DONE" in done.stderr


def test_warn_never_hides_a_vulnerability(tmp_path: Path, osv: FakeOsv) -> None:
    osv.advisories.append(JINJA_SANDBOX_BREAKOUT)
    done = audit(tmp_path, "jinja2==3.1.4\n", osv.url, "--if-unreachable", "warn")
    assert done.returncode == Outcome.VULNERABLE.value, done.stdout + done.stderr


def test_a_failing_service_is_not_a_clean_audit(tmp_path: Path, osv: FakeOsv) -> None:
    osv.status = 503
    done = audit(tmp_path, "jinja2==3.1.6\n", osv.url)
    assert done.returncode == Outcome.UNAUDITED.value, done.stdout + done.stderr
    assert "DEPENDENCY AUDIT NOT DONE" in done.stderr


def test_packages_the_service_skipped_are_not_audited() -> None:
    """What pip-audit's PyPI service reports when PyPI's JSON API answers 404 (as measured
    here): every package skipped, "No known vulnerabilities found", exit 0."""
    skipped = {
        "dependencies": [
            {"name": "aiokafka", "skip_reason": "Dependency not found on PyPI and could not be audited"},
            {"name": "anyio", "version": "4.16.0", "vulns": []},
        ]
    }
    verdict = judge(skipped, 0, "No known vulnerabilities found", expected=2)
    assert verdict.outcome is Outcome.UNAUDITED
    assert verdict.unaudited == ["aiokafka: Dependency not found on PyPI and could not be audited"]
    assert judge(None, 0, "", expected=2).outcome is Outcome.CLEAN
    partial = {"dependencies": [{"name": "anyio", "version": "4.16.0", "vulns": []}]}
    assert judge(partial, 0, "", expected=2).outcome is Outcome.UNAUDITED


def make_audit(osv_url: str, where: Path, *variables: str) -> subprocess.CompletedProcess[str]:
    paths = [f"IMAGE_VENV={where / 'image-venv'}", f"AUDIT_REPORT={where / 'audit.json'}"]
    return subprocess.run(
        ["make", "-s", "audit", f"OSV_URL={osv_url}", *paths, *variables],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )


def test_make_audit_checks_every_runtime_package_and_fails_on_a_finding(tmp_path: Path, osv: FakeOsv) -> None:
    """`make audit` on the image's packages: clean, then the lock's jinja2 made "vulnerable"
    by an advisory this server invents for it (TEST-0001), then the server gone."""
    done = make_audit(osv.url, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    runtime = (tmp_path / "image-venv" / "requirements.txt").read_text().split()
    assert sorted(osv.asked) == sorted(runtime) and "jinja2==3.1.6" in runtime
    assert "pytest" not in {pin.split("==")[0] for pin in osv.asked}  # the dev group is not the image's

    every_jinja = {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "99"}]}
    invented = {"id": "TEST-0001", "affected": [{"package": JINJA, "ranges": [every_jinja]}]}
    osv.advisories.append(invented)
    done = make_audit(osv.url, tmp_path)
    assert done.returncode != 0 and "jinja2 3.1.6: TEST-0001" in done.stderr, done.stdout + done.stderr

    gone = closed_port_url()
    assert make_audit(gone, tmp_path).returncode != 0
    warned = make_audit(gone, tmp_path, "AUDIT_IF_UNREACHABLE=warn")
    assert warned.returncode == 0 and "DEPENDENCY AUDIT NOT DONE" in warned.stderr
