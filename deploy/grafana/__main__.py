"""``python -m deploy.grafana`` writes every dashboard to ``deploy/grafana/dashboards/<name>.json``;
``--check`` writes nothing and exits 1 naming the files that differ from what the code builds."""

from __future__ import annotations

import argparse
import sys

from deploy.grafana.dashboards import generated
from deploy.grafana.queries import DASHBOARDS_DIR

OUT = DASHBOARDS_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.grafana", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only say which committed files are stale")
    args = parser.parse_args(argv)
    files = generated()
    stale = sorted(
        name for name, text in files.items() if not (OUT / name).exists() or (OUT / name).read_text() != text
    )
    extra = sorted(p.name for p in OUT.glob("*.json") if p.name not in files) if OUT.exists() else []
    if args.check:
        for name in stale:
            print(f"{OUT / name} differs from what deploy/grafana/dashboards.py builds", file=sys.stderr)
        for name in extra:
            print(f"{OUT / name} is built by no code in deploy/grafana/dashboards.py", file=sys.stderr)
        return 1 if stale or extra else 0
    OUT.mkdir(exist_ok=True)
    for name in stale:
        (OUT / name).write_text(files[name])
    for name in extra:
        (OUT / name).unlink()
    print(f"{len(files)} dashboards in {OUT} ({len(stale)} written, {len(extra)} removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
