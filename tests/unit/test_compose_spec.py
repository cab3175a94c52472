"""The compose file (``deploy/compose/compose.yaml``) validates against the compose specification
(check-jsonschema's copy of it), and a broken one does not."""

from __future__ import annotations

import subprocess
from pathlib import Path

from deploy.local.binaries import venv_bin
from tests.support.compose_file import COMPOSE


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    tool = venv_bin("check-jsonschema")
    argv = [tool, "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_the_compose_file_validates_against_the_compose_specification() -> None:
    out = check_jsonschema(COMPOSE)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok -- validation done" in out.stdout


def test_a_broken_compose_file_fails_the_specification(tmp_path: Path) -> None:
    text = COMPOSE.read_text()
    wrong = text.replace("condition: service_completed_successfully", "condition: service_finished", 1)
    assert wrong != text
    (tmp_path / "compose.yaml").write_text(wrong)
    out = check_jsonschema(tmp_path / "compose.yaml")
    assert out.returncode != 0
    assert "service_finished" in out.stdout + out.stderr
