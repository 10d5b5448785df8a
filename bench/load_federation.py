"""Load: 2,000 clients publishing FedFQ-coded updates of a 1M-parameter model through real
Mosquitto, for several rounds — straight to the central broker (``direct``), and through two
ground-station brokers bridged to it, each with a regional aggregator sending partial sums to
the root (``stations``). Aggregator peak RSS, updates per second, broker CPU and the time to
close a round, printed and written to JSON.

The aggregators are the real ``python -m edgefl.runtime aggregate|regional`` processes with a
state file (group commit, 1 s). The clients are one asyncio process (``bench/swarm.py``): each
has its own connection, persistent session and status subscription; updates are FedFQ-coded
once (8 different deltas) and replayed under each client's id and round, so the machine's CPU
goes to the brokers and the aggregators. One listener reads each round announcement for all
clients (2,000 clients fetching a 4 MB model every round is the downlink's load, not this
bench's); with stations, a round's updates go out once both regional aggregators hold the round
(a real client learns it at its station). Both modes get the same updates, so their final
models must be bitwise equal. Plain TCP on loopback, no TLS, no signing.

    nice python bench/load_federation.py [--clients 2000] [--rounds 3] [--modes direct stations]
Writes bench/results/load_federation.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from swarm import Client, connect_all  # noqa: E402

from edgefl.runtime.codecs import make_codec  # noqa: E402
from edgefl.runtime.config import make_transport  # noqa: E402
from edgefl.runtime.loops import wait_connected  # noqa: E402
from edgefl.runtime.transport import Topics  # noqa: E402
from edgefl.runtime.wire import Message, decode_message, decode_tensors, encode_message, encode_tensors  # noqa: E402
from edgefl.security.acl import bridge_topics  # noqa: E402
from edgefl.security.mosquitto_conf import Uplink, bridge_conf_text  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "load_federation.json"
FED = "load"
SHAPES = OrderedDict(
    [
        ("fc1.weight", (1024, 784)),
        ("fc1.bias", (1024,)),
        ("fc2.weight", (192, 1024)),
        ("fc2.bias", (192,)),
        ("fc3.weight", (10, 192)),
        ("fc3.bias", (10,)),
    ]
)
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _broker_conf(folder: Path, port: int, bridge: str = "") -> Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    lines = [
        "per_listener_settings false",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {folder / 'data'}/",
        "autosave_interval 1",
        "max_queued_messages 100000",
        "max_inflight_messages 100",
        f"listener {port} 127.0.0.1",
        *(["user root"] if os.geteuid() == 0 else []),
        "",
    ]
    conf = folder / "mosquitto.conf"
    conf.write_text("\n".join(lines) + bridge)
    return conf


def _proc_stat(pid: int) -> tuple[float, int, int]:
    """(CPU seconds, VmRSS, VmHWM in bytes) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    mem = {
        k: int(v.split()[0]) * 1024
        for k, v in (line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        if k in ("VmRSS", "VmHWM")
    }
    return cpu, mem.get("VmRSS", 0), mem.get("VmHWM", 0)


class Watch(threading.Thread):
    """Samples processes' CPU and memory every 0.25 s until stopped."""

    def __init__(self, procs: dict[str, subprocess.Popen]):
        super().__init__(daemon=True)
        self.procs, self.last, self.peak, self.stop_ = procs, {}, {}, False

    def sample(self):
        for name, p in self.procs.items():
            try:
                self.last[name] = _proc_stat(p.pid)
                self.peak[name] = max(self.peak.get(name, 0), self.last[name][2])
            except (OSError, IndexError):
                pass

    def run(self):
        while not self.stop_:
            self.sample()
            time.sleep(0.25)


def _model(seed=0):
    rng = np.random.RandomState(seed)
    return OrderedDict((n, (rng.randn(*s) * 0.05).astype(np.float32)) for n, s in SHAPES.items())


def _templates(k: int, seed=1):
    """k FedFQ-coded deltas (heavy-tailed, like training deltas) and their codec params."""
    codec, rng, out = make_codec("fedfq"), np.random.RandomState(seed), []
    for _ in range(k):
        delta = OrderedDict((n, (rng.standard_t(3, s) * 1e-3).astype(np.float32)) for n, s in SHAPES.items())
        out.append(codec.encode(delta, {}, rng))
    return out


class Announcements(threading.Thread):
    """One listener for every client: (round, digest, final, time) of each announcement."""

    def __init__(self, port: int, loop, queue):
        super().__init__(daemon=True)
        self.transport = make_transport("observer", {"host": "127.0.0.1", "port": port}, max_message=1 << 30)
        self.loop, self.queue, self.stop_ = loop, queue, False

    def run(self):
        topics = Topics(FED)
        self.transport.subscribe(topics.round, 1)
        self.transport.connect()
        pending = wait_connected(self.transport, 30)
        while not self.stop_:
            for ev in pending + self.transport.poll(0.2):
                if ev.kind == "message" and ev.topic == topics.round and ev.payload:
                    msg = decode_message(ev.payload)
                    item = (msg.round, msg.base_digest, bool(msg.params.get("final")), time.perf_counter())
                    self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
            pending = []
        self.transport.close()


def _regional_round(path: Path) -> int:
    """The round a regional aggregator's state file says it holds (its header only), else 0."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            meta = json.loads(f.read(int.from_bytes(head, "little")))["__metadata__"]
        return json.loads(meta["edgefl.regional_state"])["current"]["round"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0


async def _rounds(clients, templates, rounds, announced, regional_states):
    topics = Topics(FED)
    per_round = []
    nxt = await announced.get()
    for r in range(1, rounds + 1):
        while nxt[0] < r:  # a retained announcement of an earlier round, seen again
            nxt = await announced.get()
        rnd, digest, final, t0 = nxt
        # Clients here learn the round at the central broker; a real one learns it from its
        # station, where the regional aggregator has it too: wait for that, as they would (an
        # update that overtakes it is held until it comes, up to max_early_bytes).
        end = time.monotonic() + 120
        while any(_regional_round(p) < r for p in regional_states):
            if time.monotonic() > end:
                raise RuntimeError(f"a regional aggregator never saw round {r}")
            await asyncio.sleep(0.02)
        published, told = [], []

        async def one(i, c):
            tensors, params = templates[i % len(templates)]
            msg = Message(
                kind="update",
                federation=FED,
                round=r,
                client_id=c.client_id,
                base_digest=digest,
                num_examples=100 + i % 900,
                encoding="fedfq",
                params={"codec": params},
                tensors=tensors,
            )
            published.append(await c.publish(topics.update(c.client_id), encode_message(msg)))
            while True:
                _, payload = await c.inbox.get()
                status = decode_message(payload)
                if status.round == r:
                    told.append((time.perf_counter(), bool(status.params["accepted"])))
                    return

        await asyncio.gather(*(one(i, c) for i, c in enumerate(clients)))
        nxt = await announced.get()
        per_round.append(
            {
                "round": r,
                "publish_s": max(published) - t0,  # every update acknowledged by the broker
                "all_statuses_s": max(t for t, _ in told) - t0,  # every client told "accepted"
                "accepted": sum(ok for _, ok in told),
                # the aggregators still working through the broker's queue after the last publish
                "drain_s": nxt[3] - max(published),
                # the last client told -> the next round announced: closing the round
                "close_s": nxt[3] - max(t for t, _ in told),
                "round_s": nxt[3] - t0,
                "updates_per_s": len(clients) / (nxt[3] - t0),
            }
        )
        last = per_round[-1]
        print(
            f"  round {r}: {last['round_s']:.1f} s, {last['updates_per_s']:.1f} updates/s; published in "
            f"{last['publish_s']:.1f} s, all told in {last['all_statuses_s']:.1f} s, the next round "
            f"announced {last['close_s']:.2f} s after the last status",
            flush=True,
        )
        if nxt[0] != r + 1:
            raise RuntimeError(f"expected round {r + 1}, got {nxt[0]}")
    return per_round


def run_mode(mode: str, args, templates, work: Path) -> dict:
    central = _port()
    stations = {"gs-a": _port(), "gs-b": _port()} if mode == "stations" else {}
    ids = [f"sat-{i:04d}" for i in range(args.clients)]
    procs: dict[str, subprocess.Popen] = {}
    logs = []

    def start(name, cmd):
        log = open(work / f"{name}.log", "wb")
        logs.append(log)
        procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    start("broker-central", [MOSQUITTO, "-c", str(_broker_conf(work / "central", central))])
    for st, port in stations.items():
        ins, outs = bridge_topics(Topics(FED), st, "regional")
        bridge = bridge_conf_text(Uplink(f"uplink-{st}", "127.0.0.1", central, f"bridge-{st}"), ins, outs)
        start(f"broker-{st}", [MOSQUITTO, "-c", str(_broker_conf(work / st, port, "\n" + bridge))])
    time.sleep(1.0)
    model = _model()
    (work / "init.safetensors").write_bytes(encode_tensors(model))
    caps = dict.fromkeys(ids, 1000)
    agg = {
        "aggregator": {
            "federation": FED,
            "codec": "fedfq",
            "rounds": args.rounds,
            "clients": ids,
            "min_clients": args.clients,
            "deadline_s": 3600.0,
            "max_examples": 1000,
            "client_max_examples": caps,
            **({"stations": list(stations)} if stations else {}),
        },
        "mqtt": {"host": "127.0.0.1", "port": central},
        "client_id": "aggregator",
        "model": str(work / "init.safetensors"),
        "state_path": str(work / "agg.state"),
        "output": str(work / "final.safetensors"),
        "commit_interval_s": args.commit_s,
        "timeout_s": 3600,
    }
    (work / "agg.json").write_text(json.dumps(agg))
    start(
        "aggregator",
        [sys.executable, "-m", "edgefl.runtime", "aggregate", "--config", str(work / "agg.json")],
    )
    for st, port in stations.items():
        reg = {
            "regional": {
                "federation": FED,
                "station": st,
                "max_examples": 1000,
                "client_max_examples": caps,
                "partial_updates": args.partial_updates,
                "partial_interval_s": 1.0,
            },
            "mqtt": {"host": "127.0.0.1", "port": port},
            "client_id": f"regional-{st}",
            "state_path": str(work / f"{st}.state"),
            "commit_interval_s": args.commit_s,
            "timeout_s": 3600,
        }
        (work / f"{st}.json").write_text(json.dumps(reg))
        start(
            f"regional-{st}",
            [sys.executable, "-m", "edgefl.runtime", "regional", "--config", str(work / f"{st}.json")],
        )
    watch = Watch(procs)
    watch.start()

    async def main():
        loop = asyncio.get_event_loop()
        announced: asyncio.Queue = asyncio.Queue()
        observer = Announcements(central, loop, announced)
        observer.start()
        homes = list(stations.values()) or [central]
        clients = [Client(cid, "127.0.0.1", homes[i * len(homes) // len(ids)]) for i, cid in enumerate(ids)]
        t = time.perf_counter()
        await connect_all(clients, Topics(FED).status)
        connect_s = time.perf_counter() - t
        watch.sample()
        start_stat = dict(watch.last)
        t = time.perf_counter()
        states = [work / f"{st}.state" for st in stations]
        per_round = await _rounds(clients, templates, args.rounds, announced, states)
        wall = time.perf_counter() - t
        watch.sample()
        end_stat = dict(watch.last)
        for c in clients:
            await c.close()
        observer.stop_ = True
        return connect_s, per_round, wall, start_stat, end_stat

    try:
        connect_s, per_round, wall, s0, s1 = asyncio.run(main())
        for name in [n for n in procs if not n.startswith("broker")]:
            procs[name].wait(timeout=120)
    finally:
        watch.stop_ = True
        for name, p in procs.items():
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        for log in logs:
            log.close()
    model_bytes = 4 * sum(int(np.prod(s)) for s in SHAPES.values())
    final, _ = decode_tensors((work / "final.safetensors").read_bytes())
    mib = 1 << 20
    return {
        "mode": mode,
        "clients": args.clients,
        "rounds": per_round,
        "connect_s": connect_s,
        "wall_s": wall,
        "updates_per_s": args.clients * args.rounds / wall,
        "model_bytes_fp32": model_bytes,
        "update_bytes": float(np.mean([len(encode_tensors(t)) for t, _ in templates])),
        "peak_rss_mib": {n: watch.peak[n] / mib for n in procs if not n.startswith("broker")},
        "rss_after_connect_mib": {n: s0[n][1] / mib for n in procs if n in s0 and not n.startswith("broker")},
        "cpu_s": {n: s1[n][0] - s0[n][0] for n in procs if n in s0 and n in s1},
        "final_digest": __import__("hashlib")
        .sha256(b"".join(np.ascontiguousarray(final[n]).tobytes() for n in sorted(final)))
        .hexdigest(),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--modes", nargs="+", default=["direct", "stations"], choices=["direct", "stations"])
    p.add_argument("--templates", type=int, default=8)
    p.add_argument("--commit-s", type=float, default=1.0)
    p.add_argument("--partial-updates", type=int, default=250)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    templates = _templates(args.templates)
    results = []
    for mode in args.modes:
        print(f"{mode}: {args.clients} clients, {args.rounds} rounds", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"edgefl-load-{mode}-") as tmp:
            results.append(run_mode(mode, args, templates, Path(tmp)))
    same = len({r["final_digest"] for r in results}) == 1
    report = {
        "bench": "load_federation",
        "params": sum(int(np.prod(s)) for s in SHAPES.values()),
        "modes": results,
        "final_models_equal": same,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    _print(report)
    print(f"wrote {args.out}")


def _median(mode, key):
    return float(np.median([r[key] for r in mode["rounds"]]))


def _print(report):
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{report['modes'][0]['clients']} clients × FedFQ updates of {report['params']:,} params")
    for col in ("measure", *[m["mode"] for m in report["modes"]]):
        t.add_column(col)
    rows = [
        ("updates/s (all rounds)", lambda m: f"{m['updates_per_s']:.1f}"),
        ("round time (median)", lambda m: f"{np.median([r['round_s'] for r in m['rounds']]):.1f} s"),
        ("all updates published (median)", lambda m: f"{_median(m, 'publish_s'):.1f} s"),
        (
            "last status -> next round announced (median)",
            lambda m: f"{np.median([r['close_s'] for r in m['rounds']]):.2f} s",
        ),
        ("root aggregator peak RSS", lambda m: f"{m['peak_rss_mib']['aggregator']:.0f} MiB"),
        (
            "regional peak RSS",
            lambda m: (
                ", ".join(f"{v:.0f}" for k, v in m["peak_rss_mib"].items() if k.startswith("regional")) or "-"
            ),
        ),
        ("central broker CPU", lambda m: f"{m['cpu_s'].get('broker-central', 0):.1f} s"),
        (
            "station brokers CPU",
            lambda m: (
                ", ".join(f"{v:.1f} s" for k, v in m["cpu_s"].items() if k.startswith("broker-gs")) or "-"
            ),
        ),
        ("root aggregator CPU", lambda m: f"{m['cpu_s'].get('aggregator', 0):.1f} s"),
        (
            "regional aggregators CPU",
            lambda m: ", ".join(f"{v:.1f} s" for k, v in m["cpu_s"].items() if k.startswith("regional"))
            or "-",
        ),
    ]
    for name, fn in rows:
        t.add_row(name, *[fn(m) for m in report["modes"]])
    Console(width=160).print(t)
    print(f"final models bitwise equal across modes: {report['final_models_equal']}")


if __name__ == "__main__":
    main()
