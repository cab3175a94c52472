"""The README's screenshots: the skill page and a Skill Passport, at phone and desktop width,
taken from a running stack (``make run``, with its seeded demo population).

    .venv/bin/python -m tests.e2e.screenshots [--gateway http://127.0.0.1:8000] [--readme]

All four go to ``test-artifacts/screenshots/demo-*.png``; ``--readme`` also copies the two the
README shows (the skill page at desktop width, the passport at phone width) to ``docs/img/``.
The passport shown is the seeded learner with the most sessions in Machine Learning. The
browser tests take the same shots of their own stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
from pathlib import Path

import httpx
from playwright.async_api import async_playwright

from tests.e2e.browser import DESKTOP, PHONE, launch

SKILL = "machine-learning"


def busiest_handle(gateway: str, state_dir: Path) -> str:
    """The seeded learner with the most Machine Learning sessions: the passport worth showing.

    The seeding records its run id in ``var/seeded``; its learners' handles are
    ``<run id>-l<00000..>``.
    """
    run_id = json.loads((state_dir / "seeded").read_text())["run_id"]
    best, best_sessions = "", -1
    with httpx.Client(base_url=gateway, timeout=10) as client:
        for n in range(1000):
            response = client.get(f"/v1/passports/{run_id}-l{n:05d}")
            if response.status_code == 404:
                break
            skills = response.json()["skills"]
            sessions = max((s["sessions"] for s in skills if s["skill"] == SKILL), default=0)
            if sessions > best_sessions:
                best, best_sessions = response.json()["handle"], sessions
    if not best:
        raise SystemExit(
            "no seeded learner found: start the stack with `make run` (it seeds a demo population)"
        )
    return best


async def shoot(gateway: str, handle: str, out: Path) -> None:
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            for name, path in (("skill", f"/skills/{SKILL}"), ("passport", f"/passports/{handle}")):
                for width, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
                    page = await browser.new_page(viewport=viewport, java_script_enabled=False)
                    await page.goto(gateway + path)
                    await page.screenshot(path=str(out / f"demo-{name}-{width}.png"), full_page=True)
                    await page.close()
        finally:
            await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--out", type=Path, default=Path("test-artifacts/screenshots"))
    parser.add_argument("--readme", action="store_true", help="copy the README's two into docs/img/")
    parser.add_argument("--state-dir", type=Path, default=Path("var"), help="the stack's state folder")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    handle = busiest_handle(args.gateway, args.state_dir)
    asyncio.run(shoot(args.gateway, handle, args.out))
    if args.readme:
        Path("docs/img").mkdir(parents=True, exist_ok=True)
        for shot in ("skill-desktop", "passport-phone"):
            shutil.copyfile(args.out / f"demo-{shot}.png", Path("docs/img") / f"{shot}.png")
    print(f"screenshots of /skills/{SKILL} and /passports/{handle} in {args.out}")


if __name__ == "__main__":
    main()
