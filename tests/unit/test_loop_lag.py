"""The loop-lag monitor sees a loop held by synchronous work, as a starved heartbeat would."""

from __future__ import annotations

import asyncio
import time

from shared.loop_lag import LOOP_LAG_MAX, LoopLagMonitor


async def test_a_loop_held_for_a_while_shows_as_the_worst_lag() -> None:
    monitor = LoopLagMonitor("lag-test", interval_s=0.01)
    await monitor.start()
    try:
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # noqa: ASYNC251  (holds the loop, as a long synchronous fold would)
        await asyncio.sleep(0.05)
    finally:
        await monitor.stop()
    assert monitor.worst_s >= 0.25
    assert LOOP_LAG_MAX.labels("lag-test")._value.get() == monitor.worst_s
