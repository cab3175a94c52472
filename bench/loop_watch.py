"""Run a service's module with a sampler of its main thread: which code holds the event loop.

    .venv/bin/python -m bench.loop_watch services.sci --out FILE [--interval 0.005] [--min-stall 0.1]

The service runs unchanged in this process (``runpy``, as ``python -m services.sci`` would run
it). A thread samples the main thread's Python stack every ``--interval`` seconds. The loop is
*waiting* when the innermost frame is the selector's ``select`` (it waits for I/O or a timer)
and *held* otherwise, while ``asyncio``'s ``_run_once`` is on the stack (before the loop starts
nothing is counted). A stall is one callback of the loop (``Handle._run``: one step of a task)
seen in consecutive held samples: every task due meanwhile, a Kafka consumer's heartbeat
included, waits for it, so its length is the lag it causes (callbacks run back to back are
separate stalls, as the loop runs due timers between them). When the process exits (SIGTERM: the service
shuts down as usual), and every 5 s before (a process killed keeps its last report), the
stalls of at least ``--min-stall`` seconds go to ``--out`` as JSON:
when, how long, the project frames seen (innermost first) with their share of the samples, and
what the other threads were running meanwhile (a worker thread holding the GIL also holds the
loop). Sampling costs the service about 1% of a core.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tuple(str(ROOT / d) + "/" for d in ("services", "shared", "bench", "deploy", "sim", "tests"))


def project_frames(frame: FrameType | None, depth: int = 8) -> list[str]:
    """The innermost ``depth`` frames of the project's own code, innermost first."""
    out: list[str] = []
    while frame is not None and len(out) < depth:
        name = frame.f_code.co_filename
        if name.startswith(PROJECT):
            out.append(f"{name[len(str(ROOT)) + 1 :]}:{frame.f_lineno} {frame.f_code.co_qualname}")
        frame = frame.f_back
    return out


def loop_state(frame: FrameType | None) -> tuple[str, FrameType | None]:
    """``outside`` (no event loop on the stack), ``waiting`` (in the selector) or ``held``, and
    the frame of the callback being run (``asyncio.events.Handle._run``; None between them)."""
    innermost = frame
    handle: FrameType | None = None
    in_loop = False
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_run" and code.co_filename.endswith("asyncio/events.py"):
            handle = frame
        elif code.co_name == "_run_once" and code.co_filename.endswith("asyncio/base_events.py"):
            in_loop = True
            break
        frame = frame.f_back
    if not in_loop:
        return "outside", None
    assert innermost is not None
    code = innermost.f_code
    if code.co_name == "select" and code.co_filename.endswith("selectors.py"):
        return "waiting", None
    return "held", handle


@dataclass
class Stall:
    started: float
    ended: float
    handle: FrameType | None = None  # the callback's frame (held, so its identity is not reused)
    samples: int = 0
    frames: Counter[str] = field(default_factory=Counter)  # innermost project frame per sample
    stacks: Counter[tuple[str, ...]] = field(default_factory=Counter)
    threads: Counter[str] = field(default_factory=Counter)  # other threads' innermost project frame

    def to_doc(self, origin: float, interval: float) -> dict[str, Any]:
        n = max(self.samples, 1)
        return {
            "at_s": round(self.started - origin, 3),
            "seconds": round(self.ended - self.started + interval, 3),
            "samples": self.samples,
            "frames": [[f, round(c / n, 3)] for f, c in self.frames.most_common(6)],
            "stack": list(self.stacks.most_common(1)[0][0]) if self.stacks else [],
            "other_threads": [[f, round(c / n, 3)] for f, c in self.threads.most_common(3)],
        }


@dataclass
class Sampler:
    target: int  # the main thread's ident
    interval: float
    min_stall: float
    out: Path | None = None  # the report, written every ``save_every`` s and at the end
    save_every: float = 5.0
    origin: float = field(default_factory=time.monotonic)
    stalls: list[Stall] = field(default_factory=list)
    held_samples: int = 0
    waiting_samples: int = 0
    _current: Stall | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        me = threading.get_ident()
        saved = time.monotonic()
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            if now - saved >= self.save_every:
                self.save()
                saved = now
            frames = sys._current_frames()
            frame = frames.get(self.target)
            state, handle = loop_state(frame)
            if state != "held":
                if state == "waiting":
                    self.waiting_samples += 1
                self._close()
                continue
            self.held_samples += 1
            if self._current is not None and self._current.handle is not handle:
                self._close()  # the next callback
            stall = self._current = self._current or Stall(now, now, handle)
            stall.ended = now
            stall.samples += 1
            stack = project_frames(frame)
            stall.frames[stack[0] if stack else "(no project frame)"] += 1
            stall.stacks[tuple(stack)] += 1
            for ident, other in frames.items():
                if ident not in (self.target, me) and (theirs := project_frames(other, 1)):
                    stall.threads[theirs[0]] += 1

    def _close(self) -> None:
        stall, self._current = self._current, None
        if stall is not None and stall.ended - stall.started + self.interval >= self.min_stall:
            self.stalls.append(stall)

    def stop(self, thread: threading.Thread) -> None:
        self._stop.set()
        thread.join(1)
        self._close()
        self.save()

    def save(self) -> None:
        if self.out is not None:
            partial = self.out.with_name(self.out.name + ".tmp")
            partial.write_text(json.dumps(self.report(), indent=1))
            partial.replace(self.out)

    def report(self) -> dict[str, Any]:
        by_frame: dict[str, float] = {}
        for stall in self.stalls:
            for frame, count in stall.frames.items():
                by_frame[frame] = by_frame.get(frame, 0.0) + count * self.interval
        longest = sorted(self.stalls, key=lambda s: s.ended - s.started, reverse=True)
        return {
            "interval_s": self.interval,
            "min_stall_s": self.min_stall,
            "held_samples": self.held_samples,
            "waiting_samples": self.waiting_samples,
            "stalls": len(self.stalls),
            "stalled_s_by_frame": [
                [f, round(s, 2)] for f, s in sorted(by_frame.items(), key=lambda kv: -kv[1])[:15]
            ],
            "longest": [s.to_doc(self.origin, self.interval) for s in longest[:25]],
            "timeline": [
                [round(s.started - self.origin, 2), round(s.ended - s.started + self.interval, 3)]
                for s in self.stalls
            ],
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("module", help="the module to run as __main__, e.g. services.sci")
    parser.add_argument("--out", required=True, type=Path, help="the JSON report, written at exit")
    parser.add_argument("--interval", type=float, default=0.005)
    parser.add_argument("--min-stall", type=float, default=0.1)
    args = parser.parse_args(argv)
    sampler = Sampler(threading.main_thread().ident or 0, args.interval, args.min_stall, args.out)
    thread = threading.Thread(target=sampler.run, name="loop-watch", daemon=True)
    thread.start()
    sys.argv = [args.module]
    try:
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    finally:
        sampler.stop(thread)


if __name__ == "__main__":
    main()
