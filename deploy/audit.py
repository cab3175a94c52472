"""The dependency audit of the image's Python packages: pip-audit, read so that "not audited"
never passes for "clean".

pip-audit alone cannot be trusted on its exit code here, as measured with pip-audit 2.10.1:

- its default service (PyPI's per-version JSON API) answering 404 for every package makes it
  skip each one ("Dependency not found on PyPI and could not be audited") and still print
  "No known vulnerabilities found" and exit 0;
- the OSV service unreachable (no DNS, refused, an HTTP error) ends it with a traceback and
  exit 1, the very code it gives when it found vulnerabilities.

So this runs it against OSV (``-s osv``; ``--osv-url`` for a mirror) with a JSON report, on
exact pins without resolving (``--no-deps --disable-pip``: the pins are the lock's), and
decides from the report: vulnerabilities found (exit 1), every package audited and none found
(exit 0), or some package not audited, the service unreachable or failing (exit 2, or 0 with
``--if-unreachable warn``; either way a banner says so on stderr).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

OSV_URL = "https://api.osv.dev/v1/query"


class Outcome(Enum):
    CLEAN = 0
    VULNERABLE = 1
    UNAUDITED = 2


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    audited: int = 0
    vulnerabilities: list[str] = field(default_factory=list)  # "package version: id (fixed in ...)"
    unaudited: list[str] = field(default_factory=list)  # "package: why"
    detail: str = ""


def pinned(requirements: Path) -> list[str]:
    """The ``name==version`` lines of a requirements file (comments and blanks left out)."""
    lines = [line.split("#", 1)[0].strip() for line in requirements.read_text().splitlines()]
    return [line for line in lines if line]


def judge(report: dict[str, Any] | None, returncode: int, stderr: str, expected: int) -> Verdict:
    """What a pip-audit run means. ``report``: its JSON output (None when it wrote none: it
    writes one only when it found something or skipped something, or crashed before);
    ``expected``: how many packages it was given."""
    if report is None:
        if returncode == 0:
            return Verdict(Outcome.CLEAN, audited=expected)
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        why = lines[-1] if lines else f"pip-audit exited {returncode} without a report"
        return Verdict(Outcome.UNAUDITED, detail=f"the advisory service could not be asked: {why}")
    found: list[str] = []
    skipped: list[str] = []
    audited = 0
    for dep in report.get("dependencies", []):
        if "skip_reason" in dep:
            skipped.append(f"{dep['name']}: {dep['skip_reason']}")
            continue
        audited += 1
        for vuln in dep.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed version"
            aliases = "".join(f"{alias}, " for alias in vuln.get("aliases", []))
            found.append(f"{dep['name']} {dep['version']}: {vuln['id']} ({aliases}fixed in {fixed})")
    if found:
        return Verdict(Outcome.VULNERABLE, audited, found, skipped)
    if skipped or audited < expected:
        detail = f"{audited} of {expected} packages audited"
        return Verdict(Outcome.UNAUDITED, audited, [], skipped, detail)
    return Verdict(Outcome.CLEAN, audited)


def run_pip_audit(
    requirements: Path, report: Path, *, osv_url: str, timeout_s: int, cache_dir: Path | None
) -> Verdict:
    report.unlink(missing_ok=True)
    argv = [
        str(Path(sys.executable).with_name("pip-audit")),
        "--requirement", str(requirements),
        "--no-deps", "--disable-pip",
        "--vulnerability-service", "osv", "--osv-url", osv_url,
        "--format", "json", "--output", str(report),
        "--progress-spinner", "off", "--timeout", str(timeout_s),
    ]  # fmt: skip
    if cache_dir is not None:
        argv += ["--cache-dir", str(cache_dir)]
    done = subprocess.run(argv, capture_output=True, text=True)
    data = json.loads(report.read_text()) if report.exists() and report.stat().st_size else None
    return judge(data, done.returncode, done.stderr, expected=len(pinned(requirements)))


def describe(verdict: Verdict) -> str:
    if verdict.outcome is Outcome.CLEAN:
        return f"dependency audit: {verdict.audited} packages audited, no known vulnerabilities"
    if verdict.outcome is Outcome.VULNERABLE:
        lines = [
            f"dependency audit: {len(verdict.vulnerabilities)} known vulnerabilities",
            *verdict.vulnerabilities,
        ]
        return "\n  ".join(lines)
    bar = "!" * 78
    lines = [
        bar,
        "DEPENDENCY AUDIT NOT DONE: the packages were NOT checked for known vulnerabilities",
        verdict.detail,
        *verdict.unaudited[:10],
        *([f"... and {len(verdict.unaudited) - 10} more"] if len(verdict.unaudited) > 10 else []),
        "This is not a clean result. Run `make audit` where the advisory service (OSV) is",
        "reachable, or give a mirror: `make audit OSV_URL=https://.../v1/query`.",
        bar,
    ]
    return "\n".join(line for line in lines if line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("requirements", type=Path, help="exact pins (name==version), one a line")
    parser.add_argument("--report", type=Path, required=True, help="where pip-audit's JSON report goes")
    parser.add_argument("--osv-url", default=OSV_URL, help="the OSV query endpoint (a mirror's)")
    parser.add_argument("--timeout", type=int, default=15, help="seconds per request")
    parser.add_argument("--cache-dir", type=Path, default=None, help="pip-audit's HTTP cache")
    parser.add_argument(
        "--if-unreachable",
        choices=("fail", "warn"),
        default="fail",
        help="exit 2 (fail) or 0 (warn) when the packages could not all be audited",
    )
    args = parser.parse_args(argv)
    verdict = run_pip_audit(
        args.requirements, args.report, osv_url=args.osv_url, timeout_s=args.timeout, cache_dir=args.cache_dir
    )
    print(describe(verdict), file=sys.stderr if verdict.outcome is not Outcome.CLEAN else sys.stdout)
    if verdict.outcome is Outcome.UNAUDITED and args.if_unreachable == "warn":
        return 0
    return verdict.outcome.value


if __name__ == "__main__":
    sys.exit(main())
