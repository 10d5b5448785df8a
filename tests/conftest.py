"""Shared fixtures. Kept Python-3.6 compatible: the runtime tests also run under the edge stack.

`mosquitto` starts a real Mosquitto broker on a free loopback port. Where Mosquitto is absent the tests
that need it are skipped, except in CI (CI=true), where its absence is an error. The same holds for every
required tool (`require`, the `tool` fixture) and for a skip whose reason is that one of the suite's own
dependencies does not import (`INSTALLED`): in CI no skip hides a check.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What each suite installs (.ci/constraints.txt with the host and test extras; the TX2 stack of
# .ci/edge36-constraints.txt): in CI a test skipped because one of these does not import is a failure.
INSTALLED = (("onnxruntime", "numpy", "paho") if sys.version_info < (3, 10) else
             ("onnxruntime", "onnx", "numpy", "paho", "torch", "safetensors", "hypothesis", "amqtt",
              "cryptography", "typer", "rich", "scipy", "matplotlib", "torch_pruning"))


def _hidden_check(report):
    """The reason of a skip that only says a suite's own dependency did not import, else None."""
    if not (IN_CI and report.skipped):
        return None
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if reason.startswith("Skipped: "):
        reason = reason[len("Skipped: "):]
    module = re.match(r"could not import '([\w.]+)'", reason)
    return reason if module and module.group(1).split(".")[0] in INSTALLED else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    reason = _hidden_check(report)
    if reason:
        report.outcome, report.longrepr = "failed", "required in CI, but skipped: " + reason


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    reason = _hidden_check(report)
    if reason:
        report.outcome, report.longrepr = "failed", "required in CI, but skipped: " + reason


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for_port(host, port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def mosquitto_binary():
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None)


def require(thing, why):
    """Skip when `thing` is missing locally; fail in CI, where everything must be installed."""
    if thing:
        return thing
    if IN_CI:
        pytest.fail("{} is required in CI".format(why))
    pytest.skip("{} not installed".format(why))


class MosquittoBroker(object):
    """A real Mosquitto process on 127.0.0.1:port; `restart()` keeps its persistence file."""

    def __init__(self, binary, workdir, port=None, extra_conf="", persistence=True):
        self.binary, self.workdir = binary, workdir
        self.host, self.port = "127.0.0.1", port or free_port()
        self.conf = os.path.join(workdir, "mosquitto.conf")
        lines = ["listener {} 127.0.0.1".format(self.port), "allow_anonymous true",
                 "max_queued_messages 10000", "message_size_limit 0"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # otherwise mosquitto drops to 'mosquitto' and cannot write its 0700 dir
            lines.append("user root")
        if persistence:
            lines += ["persistence true", "persistence_location {}/".format(workdir), "autosave_interval 1"]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n" + extra_conf)
        self.proc = None
        self.log = os.path.join(workdir, "mosquitto.log")

    @property
    def url(self):
        return "mqtt://{}:{}".format(self.host, self.port)

    def start(self):
        self._logf = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", self.conf], stdout=self._logf,
                                     stderr=subprocess.STDOUT)
        if not wait_for_port(self.host, self.port):
            self.stop()
            raise RuntimeError("mosquitto did not start; log: " + open(self.log).read()[-2000:])
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self, down_seconds=0.0):
        self.stop()
        time.sleep(down_seconds)
        return self.start()


@pytest.fixture
def mosquitto():
    """A fresh Mosquitto broker (persistence on) for one test."""
    binary = require(mosquitto_binary(), "mosquitto (apt-get install mosquitto)")
    workdir = tempfile.mkdtemp(prefix="edgefl-mosq-")
    broker = MosquittoBroker(binary, workdir).start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def mosquitto_factory():
    """Start Mosquitto brokers with custom config lines (TLS, ACL...): factory(extra_conf, persistence)."""
    binary = require(mosquitto_binary(), "mosquitto (apt-get install mosquitto)")
    brokers, dirs = [], []

    def make(extra_conf="", persistence=True, port=None, anonymous=True):
        workdir = tempfile.mkdtemp(prefix="edgefl-mosq-")
        dirs.append(workdir)
        b = MosquittoBroker(binary, workdir, port=port, extra_conf=extra_conf, persistence=persistence)
        if not anonymous:
            with open(b.conf) as f:
                text = f.read().replace("allow_anonymous true", "allow_anonymous false")
            with open(b.conf, "w") as f:
                f.write(text)
        brokers.append(b)
        return b

    try:
        yield make
    finally:
        for b in brokers:
            b.stop()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def required():
    """``required(thing, why)``: ``thing``; missing (falsy), skipped locally, failed in CI (``require``)."""
    return require


@pytest.fixture
def tool():
    """``tool(name, why)``: the path of an executable beside the running interpreter (its venv), else on
    PATH; missing, the test is skipped locally and fails in CI (see ``require``)."""
    def find(name, why):
        beside = os.path.join(os.path.dirname(sys.executable), name)
        return require(beside if os.path.exists(beside) else shutil.which(name), why)
    return find


@pytest.fixture
def python36():
    """Path to a Python 3.6 interpreter with the edge stack (EDGEFL_PY36, else the checkout's .venv36)."""
    path = os.environ.get("EDGEFL_PY36") or os.path.join(REPO, ".venv36", "bin", "python")
    return require(path if os.path.exists(path) else None, "Python 3.6 edge venv (bash .ci/setup)")


def load_file_module(name, *parts):
    """The module at REPO/parts..., loaded by file path under ``name`` (scripts and fixtures that are not
    packages: bench/*.py, tests/fixtures/models/*.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, *parts))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fixture_model():
    """``fixture_model(name, **args)``: the model ``build(**args)`` of tests/fixtures/models/NAME.py
    makes (seeded), loaded by file path as ``--model FILE.py:build`` would (models not in the zoo)."""
    import torch

    def build(name, **args):
        module = load_file_module("fixture_" + name, "tests", "fixtures", "models", name + ".py")
        torch.manual_seed(0)
        return module.build(**args)
    return build


@pytest.fixture(scope="session")
def bench_script():
    """``bench_script(name)``: bench/NAME.py loaded as a module (its pure functions, worked by hand)."""
    return lambda name: load_file_module(name, "bench", name + ".py")


@pytest.fixture(scope="session")
def mnist_npz(tmp_path_factory):
    """``mnist_npz(n)``: the first n shipped MNIST training images (seed-0 split) as an .npz of uint8
    images and labels — what a user's own data file looks like to edgefl."""
    import numpy as np

    from edgefl.data import load_mnist, train_test_split

    def write(n):
        train, _ = train_test_split(load_mnist(), 0.2, seed=0)
        path = tmp_path_factory.mktemp("data") / "digits.npz"
        np.savez(path, x=(train.x[:n, 0] * 255).round().astype(np.uint8), y=train.y[:n])
        return path
    return write
