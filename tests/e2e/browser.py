"""Headless Chromium for the browser tests: Debian's ``chromium`` package driven by Playwright.

Playwright never downloads a browser here: it launches the system's Chromium by path
(``make test`` installs it with apt-get when it is missing; ``LEMMA_CHROMIUM`` names another
binary). Without it the browser tests fail, they do not skip.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, ViewportSize

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"

#: The background-networking flags matter: without them Chromium keeps opening connections the
#: machine's closed network refuses, and the tests wait on them.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}


def chromium_path() -> str:
    """The Chromium binary to drive; fails the test with how to install it when there is none."""
    path = os.environ.get("LEMMA_CHROMIUM") or CHROMIUM
    found = path if os.access(path, os.X_OK) else shutil.which(path)
    if not found:
        pytest.fail(
            f"Chromium not found at {path}: the browser tests drive Debian's chromium package. "
            "`make test` installs it; by hand: apt-get install -y --no-install-recommends chromium "
            "(or set LEMMA_CHROMIUM to a Chromium binary). Never `playwright install`.",
            pytrace=False,
        )
    return found


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=chromium_path(), args=ARGS, headless=True)


def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot saved as test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def artifact_name(nodeid: str) -> str:
    """A file name for a test id (``tests/e2e/x.py::test_y[a]`` -> ``x-test_y-a``)."""
    name = nodeid.rsplit("/", 1)[-1].replace(".py::", "-")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
