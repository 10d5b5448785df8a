"""The aggregator at a ground station: ``python -m edgefl.sim.ground CONFIG.json``.

The runtime's aggregator (pure round state machine + serve loop) on the simulated clock, so
round deadlines are in simulated seconds. Writes the round history (with the simulated close
time of each round) to ``history_out``.
"""

from __future__ import annotations

import json
import sys

from edgefl.sim.clock import clock_from_file


def run_ground(cfg: dict) -> list[dict]:
    from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore
    from edgefl.runtime.config import build_dataclass, load_model_tensors, make_transport
    from edgefl.runtime.loops import serve_aggregator

    acfg = build_dataclass(AggregatorConfig, cfg["aggregator"], "aggregator")
    core = AggregatorCore(acfg, load_model_tensors(cfg["model"]))
    mqtt = dict(cfg["mqtt"], username=cfg.get("client_id", "ground"))
    transport = make_transport(cfg.get("client_id", "ground"), mqtt, cfg.get("max_payload", 1024 * 1024))
    closed: list[dict] = []
    clock = clock_from_file(cfg["clock_file"], cfg.get("ready_file"))

    def on_round(entry: dict) -> None:
        closed.append(dict(entry, sim_time_s=round(clock.now(), 1)))

    clock.sleep_until(0.0)
    try:
        serve_aggregator(
            core,
            transport,
            timeout=float(cfg["duration_s"]) - clock.now(),
            on_round=on_round,
            clock=clock.now,
            poll_s=0.05,
        )
    finally:
        transport.close()
    return closed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as fh:
        cfg = json.load(fh)
    history = run_ground(cfg)
    with open(cfg["history_out"], "w") as fh:
        json.dump(history, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
