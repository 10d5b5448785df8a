"""Fixtures for the reliability suite: real Mosquitto processes on free loopback ports (with
persistence, restartable, killable), and a small paho client that records what it receives.

Everything started here is stopped in the fixture finalizers, whatever the test did."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
TINY_BUNDLE = Path(__file__).resolve().parents[1] / "runtime" / "data" / "tiny_bundle"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class MosquittoProcess:
    """One Mosquitto broker process running ``conf``; can be stopped, killed and restarted on
    the same port (same persistence file)."""

    def __init__(self, conf: Path, port: int, log: Path):
        self.conf, self.port, self.log = conf, port, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "MosquittoProcess":
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf)], stdout=fh, stderr=subprocess.STDOUT
            )
        try:
            wait_port(self.port)
        except RuntimeError:
            self.stop(kill=True)
            raise RuntimeError(f"mosquitto did not start; log:\n{self.log.read_text()[-2000:]}")
        return self

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None

    def restart(self, kill: bool = False, down_s: float = 0.0) -> None:
        self.stop(kill=kill)
        time.sleep(down_s)
        self.start()

    def wait_persisted(self, payloads: list[bytes], timeout: float = 60.0) -> None:
        """Wait until the broker's persistence file holds every payload (it stores them as they
        came). A PUBACK only says the broker has a message in memory: Mosquitto saves after its
        loop has handled the packet, so a kill -9 right after the acknowledgement can lose it."""
        db = self.conf.parent / "data" / "mosquitto.db"  # written whole, then renamed into place
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            blob = db.read_bytes() if db.exists() else b""
            if all(p in blob for p in payloads):
                return
            time.sleep(0.02)
        raise RuntimeError(f"the broker did not save {len(payloads)} messages within {timeout}s")


def plain_conf(port: int, data_dir: Path, save_every_change: bool = False) -> str:
    """Anonymous loopback broker with persistence, saved every second (and on a clean stop), or
    after every change (survives kill -9 at any time, but slows a busy broker a lot)."""
    return "\n".join(
        [
            "per_listener_settings false",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {data_dir}/",
            "autosave_interval 1",
            *(["autosave_on_changes true"] if save_every_change else []),
            "max_queued_messages 10000",
            f"listener {port} 127.0.0.1",
            *(["user root"] if os.geteuid() == 0 else []),
            "",
        ]
    )


@pytest.fixture
def broker_factory(tmp_path):
    """Start brokers: ``factory(conf_text_or_None, port=None) -> MosquittoProcess``; with no
    text, a plain persistent anonymous broker on a free loopback port."""
    started: list[MosquittoProcess] = []

    def factory(
        conf_text: str | None = None,
        port: int | None = None,
        name: str = "broker",
        save_every_change: bool = False,
    ) -> MosquittoProcess:
        port = port or free_port()
        folder = tmp_path / f"{name}-{port}"
        (folder / "data").mkdir(parents=True, exist_ok=True)
        conf = folder / "mosquitto.conf"
        conf.write_text(
            conf_text if conf_text is not None else plain_conf(port, folder / "data", save_every_change)
        )
        broker = MosquittoProcess(conf, port, folder / "mosquitto.log")
        started.append(broker)
        return broker.start()

    yield factory
    for broker in started:
        broker.stop(kill=True)


@pytest.fixture
def free_tcp_port() -> int:
    return free_port()


@pytest.fixture
def secured_federation(tmp_path, broker_factory, free_tcp_port):
    """``make(name, clients) -> (layout, bundle)``: `edgefl federation init` on a free loopback port (TLS,
    passwords, ACL, HMAC keys, announcement key pair), Mosquitto running its generated configuration, and a
    copy of the tiny test bundle as the federation's model."""
    import getpass

    from edgefl.security import init_federation

    def make(name: str, clients: int):
        layout = init_federation(
            name,
            clients,
            tmp_path / "fed",
            port=free_tcp_port,
            bind="127.0.0.1",
            broker_user=getpass.getuser() if os.geteuid() == 0 else None,  # mosquitto drops root otherwise
        )
        broker_factory(layout.broker_conf.read_text(), port=free_tcp_port, name="tls")
        return layout, shutil.copytree(TINY_BUNDLE, tmp_path / "bundle")

    return make


@pytest.fixture
def broker(broker_factory) -> MosquittoProcess:
    """A plain persistent Mosquitto on a free loopback port."""
    return broker_factory()


class Recorder:
    """A paho client (2.x API) that connects, subscribes and queues what it receives; for
    checking broker behaviour (ACL, TLS, sessions) directly, without the runtime."""

    def __init__(
        self, port: int, client_id: str, *, username=None, password=None, tls=None, clean_session: bool = True
    ):
        import paho.mqtt.client as mqtt

        self.messages: "queue.Queue" = queue.Queue()
        self.connack: "queue.Queue" = queue.Queue()
        self.suback: "queue.Queue" = queue.Queue()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(**tls)
        self.client.on_connect = lambda c, u, f, rc, p=None: self.connack.put(rc)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda c, u, mid, rcs, p=None: self.suback.put(list(rcs))
        self.port = port

    def connect(self, timeout: float = 5.0):
        """Connect and return the CONNACK reason code (0 / ``is_failure`` False = accepted)."""
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        return self.connack.get(timeout=timeout)

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 5.0):
        self.client.subscribe(topic, qos)
        return self.suback.get(timeout=timeout)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=5)

    def drain(self, wait: float = 0.5) -> list[tuple[str, bytes]]:
        out, end = [], time.monotonic() + wait
        while True:
            try:
                out.append(self.messages.get(timeout=max(0.0, end - time.monotonic())))
            except queue.Empty:
                return out

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


@pytest.fixture
def recorders():
    """Make Recorder clients; all are disconnected at teardown."""
    made: list[Recorder] = []

    def make(*args, **kwargs) -> Recorder:
        rec = Recorder(*args, **kwargs)
        made.append(rec)
        return rec

    yield make
    for rec in made:
        try:
            rec.close()
        except Exception:  # teardown of a client whose broker is already gone
            pass


HERE = Path(__file__).resolve().parent
# Wall-clock bound on a process's life or a wait for something that will happen: it ends a hang,
# never a run that is merely slow (2 cores shared with other jobs make a 10 s run take 100 s).
HANG_S = 300.0


@pytest.fixture
def edge36_path(tmp_path) -> str:
    """PYTHONPATH for the Python 3.6 edge stack: a folder where ``edgefl`` holds only the
    runtime, as on the device (``EDGEFL_EDGE36_PATH`` when set, e.g. the checkout's .edge36)."""
    if os.environ.get("EDGEFL_EDGE36_PATH"):
        return os.environ["EDGEFL_EDGE36_PATH"]
    pkg = tmp_path / "edge" / "edgefl"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    os.symlink(HERE.parents[1] / "runtime", pkg / "runtime")
    return str(tmp_path / "edge")


@pytest.fixture(scope="session")
def flkit():
    """tests/reliability/flkit.py (trainer, reference run, agent process script) as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("edgefl_reliability_flkit", HERE / "flkit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_until(predicate, timeout: float, what: str, every: float = 0.05):
    """Poll ``predicate()`` until it returns something truthy; fail the test naming ``what``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


class FedRun:
    """A federation of real processes through a real broker: the aggregator is
    ``python -m edgefl.runtime aggregate`` (state file, output model), agents are
    ``flkit.py agent`` processes. Every process is SIGKILLed at teardown if still alive."""

    def __init__(self, tmp_path: Path, broker: MosquittoProcess, flkit):
        self.dir, self.broker, self.flkit = tmp_path, broker, flkit
        self.procs: list[subprocess.Popen] = []
        self.state_path = tmp_path / "agg_state.safetensors"
        self.output = tmp_path / "final.safetensors"
        self.model_path = tmp_path / "init.safetensors"
        self.markers = tmp_path / "markers"
        self.markers.mkdir(exist_ok=True)
        from edgefl.runtime.wire import encode_tensors

        self.model_path.write_bytes(encode_tensors(flkit.init_model()))

    @property
    def mqtt(self) -> dict:
        return {"host": "127.0.0.1", "port": self.broker.port, "keepalive": 5}

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "ab")
        env = None if env is None else {**os.environ, **env}
        proc = subprocess.Popen(argv, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        self.procs.append(proc)
        return proc

    def start_aggregator(
        self, aggregator: dict, env: dict | None = None, python: str = sys.executable, **extra
    ) -> subprocess.Popen:
        """``python -m edgefl.runtime aggregate`` on this run's config (``env`` added to the
        environment, e.g. a test hook on PYTHONPATH; ``python`` e.g. the Python 3.6 edge stack)."""
        cfg = {
            "aggregator": aggregator,
            "mqtt": self.mqtt,
            "model": str(self.model_path),
            "state_path": str(self.state_path),
            "output": str(self.output),
            "client_id": "aggregator",
            "timeout_s": HANG_S,
            **extra,
        }
        path = self.dir / "aggregator.json"
        path.write_text(json.dumps(cfg))
        return self._spawn(
            "aggregator", [python, "-m", "edgefl.runtime", "aggregate", "--config", str(path)], env
        )

    def start_agent(
        self, client_id: str, python: str = sys.executable, env: dict | None = None, **options
    ) -> subprocess.Popen:
        cfg = {
            "federation": options.pop("federation", "rel"),
            "client_id": client_id,
            "mqtt": self.mqtt,
            "state_path": str(self.dir / f"{client_id}.state"),
            "marker_dir": str(self.markers),
            "timeout_s": HANG_S,
            **options,
        }
        path = self.dir / f"{client_id}.json"
        path.write_text(json.dumps(cfg))
        return self._spawn(client_id, [python, str(HERE / "flkit.py"), "agent", str(path)], env)

    def start_runtime_agent(self, client_id: str, **cfg) -> subprocess.Popen:
        """``python -m edgefl.runtime agent`` (the device entry point) with this config."""
        cfg = {"client_id": client_id, "mqtt": self.mqtt, "timeout_s": HANG_S, **cfg}
        path = self.dir / f"{client_id}.json"
        path.write_text(json.dumps(cfg))
        return self._spawn(
            client_id, [sys.executable, "-m", "edgefl.runtime", "agent", "--config", str(path)]
        )

    def state(self):
        """The aggregator's persisted state (an AggregatorCore), or None before the first write."""
        from edgefl.runtime.aggregator import AggregatorCore

        blob = self.state_path.read_bytes() if self.state_path.exists() else b""
        return AggregatorCore.from_bytes(blob) if blob else None

    def training_started(self, client_id: str) -> int:
        marker = self.markers / f"{client_id}.training"
        return len(marker.read_text().split()) if marker.exists() else 0

    def wait_exit(self, proc: subprocess.Popen, timeout: float = HANG_S) -> int:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"process {proc.args} did not finish in {timeout}s; logs in {self.dir}")

    def final_model(self):
        from edgefl.runtime.wire import decode_tensors

        tensors, meta = decode_tensors(self.output.read_bytes())
        return {n: np.array(v) for n, v in tensors.items()}, meta

    def log(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def fedrun(tmp_path, broker, flkit):
    run = FedRun(tmp_path, broker, flkit)
    yield run
    run.cleanup()


@pytest.fixture
def wait():
    """``wait(predicate, timeout, what)``: poll until truthy, else fail naming ``what``."""
    return wait_until


@pytest.fixture
def live(broker, flkit):
    """Make in-process aggregators (thread) and manual agents on the test's broker; all are
    stopped and disconnected at teardown."""
    made = []
    mqtt = {"host": "127.0.0.1", "port": broker.port, "keepalive": 5}

    class Live:
        def aggregator(self, config, model, keyring=None):
            agg = flkit.AggregatorThread(config, model, mqtt, keyring)
            made.append(agg)
            return agg

        def agent(self, client_id):
            agent = flkit.ManualAgent(client_id, mqtt).connect()
            made.append(agent)
            return agent

    yield Live()
    for thing in made:
        try:
            if isinstance(thing, flkit.AggregatorThread):
                thing.stop()
                thing.transport.close()
            elif thing.transport is not None:
                thing.disconnect()
        except Exception:  # teardown after a failure: keep closing the rest
            pass
