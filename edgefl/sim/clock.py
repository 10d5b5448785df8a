"""The simulated clock shared by every process of a simulation (time compression).

sim_seconds = (wall_now - t0_wall) · speedup. All processes get the same t0_wall and speedup, so
they agree on simulated time without talking to each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class SimClock:
    t0_wall: float
    speedup: float

    def now(self) -> float:
        return (time.time() - self.t0_wall) * self.speedup

    def wall_at(self, sim_s: float) -> float:
        return self.t0_wall + sim_s / self.speedup

    def sleep_until(self, sim_s: float) -> None:
        delay = self.wall_at(sim_s) - time.time()
        if delay > 0:
            time.sleep(delay)


def clock_from_file(path: str, ready_file: str | None = None, timeout_wall_s: float = 120.0) -> SimClock:
    """Say ready (after the slow imports), then wait for the orchestrator to start the clock.

    The orchestrator writes ``path`` = {"t0_wall", "speedup"} once every process is ready, so
    import time on a busy machine never eats simulated time.
    """
    import json
    import os

    if ready_file:
        with open(ready_file, "w") as fh:
            fh.write(str(os.getpid()))
    end = time.time() + timeout_wall_s
    while not os.path.exists(path):
        if time.time() > end:
            raise TimeoutError(f"simulation clock {path} never started")
        time.sleep(0.05)
    with open(path) as fh:
        doc = json.load(fh)
    return SimClock(float(doc["t0_wall"]), float(doc["speedup"]))


def start_clock(path: str, speedup: float, lead_wall_s: float = 1.0) -> SimClock:
    """Write the clock file (atomically): simulated time 0 is lead_wall_s from now."""
    import json
    import os

    clock = SimClock(time.time() + lead_wall_s, speedup)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"t0_wall": clock.t0_wall, "speedup": speedup}, fh)
    os.replace(tmp, path)
    return clock
