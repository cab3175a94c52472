"""The heartbeat bench's readings (bench/loop_lag.py) and its sampler of a held loop (bench/loop_watch.py)."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path

from bench.loop_lag import Calibrations, late_counts, metrics
from bench.loop_watch import Sampler, loop_state
from shared.events.payloads import RatersCalibrated

TEXT = """\
# TYPE lemma_events_consumed_total counter
lemma_events_consumed_total{consumer="sci",service="sci",type="lemma.evidence.EvidenceRecorded.v1"} 1500.0
lemma_events_consumed_total{consumer="sci",service="sci",type="lemma.passport.SkillClaimed.v1"} 7.0
lemma_events_consumed_total{consumer="sci",service="other",type="lemma.evidence.EvidenceRecorded.v1"} 9.0
# TYPE lemma_event_loop_lag_max_seconds gauge
lemma_event_loop_lag_max_seconds{service="sci"} 0.75
# TYPE lemma_event_loop_lag_seconds histogram
lemma_event_loop_lag_seconds_bucket{le="0.1",service="sci"} 90.0
lemma_event_loop_lag_seconds_bucket{le="0.5",service="sci"} 98.0
lemma_event_loop_lag_seconds_bucket{le="1.0",service="sci"} 100.0
lemma_event_loop_lag_seconds_bucket{le="+Inf",service="sci"} 100.0
lemma_event_loop_lag_seconds_count{service="sci"} 100.0
lemma_event_loop_lag_seconds_sum{service="sci"} 3.0
"""


def test_metrics_reads_the_sci_services_figures_only() -> None:
    m = metrics(TEXT)
    assert m["consumed"] == 1500  # evidence of the sci service, not another type or service
    assert m["lag_max_s"] == 0.75
    assert late_counts(m["lag_buckets"], m["lag_count"]) == {">0.1s": 10, ">0.5s": 2}


def part(digest: str, ratings: int, n: int, parts: int) -> RatersCalibrated:
    return RatersCalibrated(
        skill="machine-learning", version="v", digest=digest, ratings=ratings, part=n, parts=parts, bias={}
    )


def test_a_calibration_counts_once_every_part_is_read() -> None:
    seen = Calibrations()
    seen.add(part("d1", 5000, 0, 2), 1.0)
    assert not seen.whole_over(5000)
    seen.add(part("d0", 4000, 0, 1), 1.5)
    assert not seen.whole_over(5000) and seen.whole_over(4000)
    seen.add(part("d1", 5000, 1, 2), 2.0)
    assert seen.whole_over(5000) and not seen.whole_over(5001)


def test_the_sampler_tells_a_waiting_loop_from_a_held_one(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def hold() -> None:
        time.sleep(0.3)  # a callback that holds the loop

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(5)
    time.sleep(0.05)
    assert loop_state(sys._current_frames()[thread.ident or 0]) == ("waiting", None)
    assert loop_state(sys._getframe()) == ("outside", None)
    out = tmp_path / "watch.json"
    sampler = Sampler(thread.ident or 0, interval=0.005, min_stall=0.1, out=out)
    watcher = threading.Thread(target=sampler.run, daemon=True)
    watcher.start()
    time.sleep(0.1)
    loop.call_soon_threadsafe(hold)
    loop.call_soon_threadsafe(hold)  # back to back: two callbacks, two stalls of 0.3 s
    time.sleep(0.8)
    sampler.stop(watcher)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()
    report = sampler.report()
    assert json.loads(out.read_text()) == report  # written at the stop
    assert report["stalls"] == 2, report
    for stall in report["longest"]:
        assert 0.25 <= stall["seconds"] <= 0.45
        frame, share = stall["frames"][0]
        assert frame.startswith("tests/unit/test_bench_loop_lag.py:") and frame.endswith("<locals>.hold")
        assert share > 0.9
    assert report["waiting_samples"] > 10
