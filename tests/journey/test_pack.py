"""`edgefl pack`: archive contents, the installer's logic, and the packed agent taking part in a round.

The end-to-end test unpacks the tarball, makes a fresh Python 3.6 virtualenv whose only extra path is
the edge stack (a .pth to the Python 3.6 edge venv's site-packages: the device's preinstalled
numpy 1.19.5 / paho-mqtt 1.6.1 / onnxruntime 1.10), runs install.sh (which must find every pin
satisfied and install nothing), then starts exactly the commands of the systemd unit it wrote and
checks the agent's update is accepted by a host aggregator through a real Mosquitto.
"""

import importlib.util
import json
import os
import subprocess
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from edgefl.errors import EdgeflError
from edgefl.export.profiles import load_profile
from edgefl.pack import pack_agent, pins_for_profile, unpack

TEMPLATES = Path(__file__).resolve().parents[2] / "edgefl" / "pack_templates"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    import torch

    from edgefl.checkpoint import save_checkpoint
    from edgefl.data import MNIST_PREPROCESSING
    from edgefl.export.pipeline import ExportRequest, export_checkpoint
    from edgefl.models import build_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("bundle")
    args = {"in_channels": 1, "num_classes": 10}
    ck = save_checkpoint(
        root / "ck",
        build_model("resnet20", **args),
        {
            "model": "resnet20",
            "model_args": args,
            "input_shape": [1, 28, 28],
            "num_classes": 10,
            "preprocessing": MNIST_PREPROCESSING,
            "data": "mnist",
        },
    )
    export_checkpoint(
        ExportRequest(Path(ck), "jetson-tx2", "fp32", "tensorrt", root / "bundle", parity_samples=64)
    )
    return root / "bundle"


@pytest.fixture(scope="module")
def local_data(tmp_path_factory):
    from edgefl.data import load_mnist

    d = load_mnist()
    path = tmp_path_factory.mktemp("data") / "local.npz"
    np.savez(path, x=d.x[:96], y=d.y[:96])
    return path


def _install_module():
    spec = importlib.util.spec_from_file_location("edgefl_pack_install", TEMPLATES / "install.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_pins_follow_the_profile():
    assert pins_for_profile(load_profile("jetson-tx2")) == {
        "numpy": "==1.19.5",
        "paho-mqtt": "==1.6.1",
        "dataclasses": "==0.8",
    }
    orin = pins_for_profile(load_profile("jetson-agx-orin"))
    assert orin["numpy"] == "==2.2.*" and "dataclasses" not in orin and "onnxruntime" not in orin
    assert pins_for_profile(load_profile("rpi5-cpu"))["onnxruntime"] == ""  # CPU board: ORT from PyPI


def test_installer_planning_is_pure_and_exact():
    inst = _install_module()
    assert inst.version_matches("1.19.5", "==1.19.5") and not inst.version_matches("1.19.4", "==1.19.5")
    assert inst.version_matches("2.2.6", "==2.2.*") and not inst.version_matches("2.20.0", "==2.2.*")
    assert not inst.version_matches(None, "") and inst.version_matches("9", "")
    pins = {"numpy": "==1.19.5", "paho-mqtt": "==1.6.1"}
    assert inst.plan_packages(pins, {"numpy": "1.19.5", "paho-mqtt": "2.2.0"}) == ["paho-mqtt==1.6.1"]
    assert inst.plan_engine({"tensorrt": "8.2.1", "onnxruntime": "1.10.0"}, "tensorrt") == "tensorrt"
    assert inst.plan_engine({"tensorrt": None, "onnxruntime": "1.10.0"}, "tensorrt") == "onnxruntime"
    with pytest.raises(inst.InstallError, match="no inference engine"):
        inst.plan_engine({"tensorrt": None, "onnxruntime": None}, "tensorrt")


def test_pack_holds_runtime_bundle_config_and_unit(tmp_path, bundle, local_data):
    result = pack_agent(
        "jetson-tx2",
        bundle,
        tmp_path / "agent.tar.gz",
        broker_url="mqtt://ground.example:1884",
        federation="orbit",
        client_id="tx2-7",
        data=local_data,
    )
    with tarfile.open(result.path) as tar:
        members = {m.name: m for m in tar.getmembers()}
        read = lambda n: tar.extractfile(members["edgefl-agent/" + n]).read()  # noqa: E731
        pack = json.loads(read("PACK.json"))
        for name, digest in pack["files"].items():
            import hashlib

            assert hashlib.sha256(read(name)).hexdigest() == digest, name
        runtime_dir = Path(__file__).resolve().parents[2] / "runtime"
        for f in runtime_dir.rglob("*.py"):
            assert read(f"edgefl/runtime/{f.relative_to(runtime_dir).as_posix()}") == f.read_bytes()
        assert members["edgefl-agent/install.sh"].mode & 0o111
        config = json.loads(read("agent.json"))
        unit = read("edgefl-agent.service.in").decode()
        device_init = read("edgefl/__init__.py")
    assert pack["pins"] == {"numpy": "==1.19.5", "paho-mqtt": "==1.6.1", "dataclasses": "==0.8"}
    assert config["mqtt"] == {"host": "ground.example", "port": 1884, "tls": False, "username": "tx2-7"}
    assert (config["federation"], config["client_id"], config["bundle"]) == ("orbit", "tx2-7", "bundle")
    assert "Restart=always" in unit and "first_start.py" in unit and "-m edgefl.runtime agent" in unit
    assert b"import" not in device_init  # the device's edgefl package imports nothing from the host side


def test_pack_refuses_bad_inputs(tmp_path, bundle):
    with pytest.raises(EdgeflError, match="exported for jetson-tx2"):
        pack_agent("jetson-agx-orin", bundle, tmp_path / "a.tar.gz")
    with pytest.raises(EdgeflError, match=r"\*.tar.gz"):
        pack_agent("jetson-tx2", bundle, tmp_path / "a.zip")
    with pytest.raises(EdgeflError, match="edgefl export"):
        pack_agent("jetson-tx2", tmp_path / "nope", tmp_path / "a.tar.gz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((2, 1)), y=np.zeros(3))
    with pytest.raises(EdgeflError, match="same non-zero number"):
        pack_agent("jetson-tx2", bundle, tmp_path / "a.tar.gz", data=bad)


def _fresh_venv36(python36: str, where: Path, with_edge_stack: bool) -> Path:
    """A new Python 3.6 venv; optionally with the edge venv's site-packages on its path (.pth)."""
    info = (
        subprocess.check_output(
            [python36, "-c", "import site, sys; print(sys.base_prefix); print(site.getsitepackages()[0])"]
        )
        .decode()
        .split()
    )
    base_python = Path(info[0]) / "bin" / "python3.6"
    subprocess.check_call([str(base_python), "-m", "venv", "--without-pip", str(where)])
    if with_edge_stack:
        (where / "lib" / "python3.6" / "site-packages" / "edge-stack.pth").write_text(info[1] + "\n")
    return where / "bin" / "python"


def _unit_commands(unit_text: str) -> tuple[dict, str, str, str]:
    env, cwd, pre, start = {}, None, None, None
    for line in unit_text.splitlines():
        key, _, value = line.partition("=")
        if key == "Environment":
            k, _, v = value.partition("=")
            env[k] = v
        elif key == "WorkingDirectory":
            cwd = value
        elif key == "ExecStartPre":
            pre = value
        elif key == "ExecStart":
            start = value
    return env, cwd, pre, start


def test_check_only_reports_missing_stack(tmp_path, bundle, python36):
    pack_agent("jetson-tx2", bundle, tmp_path / "agent.tar.gz")
    folder = unpack(tmp_path / "agent.tar.gz", tmp_path / "u")
    bare = _fresh_venv36(python36, tmp_path / "bare", with_edge_stack=False)
    proc = subprocess.run(
        ["sh", str(folder / "install.sh"), "--check-only", "--prefix", str(tmp_path / "opt")],
        env=dict(os.environ, EDGEFL_PYTHON=str(bare)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
    )
    text = proc.stdout.decode()
    assert proc.returncode == 2 and "no inference engine" in text, text
    assert "numpy        want ==1.19.5   have -" in text
    assert not (tmp_path / "opt").exists()


def test_packed_agent_installs_on_python36_and_joins_a_round(
    tmp_path, bundle, local_data, python36, mosquitto
):
    from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore
    from edgefl.runtime.config import load_model_tensors, make_transport
    from edgefl.runtime.loops import serve_aggregator

    result = pack_agent(
        "jetson-tx2",
        bundle,
        tmp_path / "agent.tar.gz",
        broker_url=mosquitto.url,
        federation="packtest",
        client_id="tx2-0",
        data=local_data,
    )
    folder = unpack(result.path, tmp_path / "unpacked")
    venv_python = _fresh_venv36(python36, tmp_path / "venv", with_edge_stack=True)
    prefix = tmp_path / "opt" / "edgefl-agent"
    install = subprocess.run(
        ["sh", str(folder / "install.sh"), "--prefix", str(prefix), "--systemd-dir", ""],
        env=dict(os.environ, EDGEFL_PYTHON=str(venv_python)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=120,
    )
    log = install.stdout.decode()
    assert install.returncode == 0, log
    assert "nothing to install" in log and "Python 3.6" in log

    env_extra, cwd, pre, start = _unit_commands((prefix / "edgefl-agent.service").read_text())
    assert cwd == str(prefix) and env_extra["PYTHONPATH"] == str(prefix)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(env_extra)
    first = subprocess.run(
        pre.split(), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60
    )
    assert first.returncode == 0 and b"onnxruntime" in first.stdout, first.stdout

    core = AggregatorCore(
        AggregatorConfig(
            federation="packtest",
            rounds=1,
            min_clients=1,
            clients=["tx2-0"],
            deadline_s=120,
            train={"epochs": 1, "lr": 0.05},
        ),
        load_model_tensors(str(bundle)),
    )
    transport = make_transport("aggregator-packtest", {"host": mosquitto.host, "port": mosquitto.port})
    server = threading.Thread(
        target=serve_aggregator, args=(core, transport), kwargs={"timeout": 120}, daemon=True
    )
    server.start()
    agent = subprocess.Popen(
        start.split(), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        server.join(150)
    finally:
        if agent.poll() is None:
            agent.terminate()
        out = agent.communicate(timeout=20)[0].decode()
        transport.close()
    assert core.done, f"round did not close; agent log:\n{out}"
    assert core.history[0]["clients"] == ["tx2-0"] and core.history[0]["num_examples"] == 96, out
    assert "round 1: sent" in out
    version = subprocess.check_output([str(venv_python), "-c", "import sys; print(sys.version_info[:2])"])
    assert version.decode().strip() == "(3, 6)"  # the unit ran the packed runtime on Python 3.6


def test_installer_files_stay_python36_compatible(tool):
    vermin = tool("vermin", "vermin (the test extra)")
    proc = subprocess.run(
        [vermin, "-t=3.6-", "--no-tips", "--violations", "--eval-annotations", str(TEMPLATES)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.returncode == 0, proc.stdout.decode()


def test_installer_refuses_the_wrong_python(tmp_path, bundle):
    import sys

    pack_agent("jetson-tx2", bundle, tmp_path / "agent.tar.gz")
    folder = unpack(tmp_path / "agent.tar.gz", tmp_path / "u")
    proc = subprocess.run(
        [sys.executable, str(folder / "install.py"), "--python", sys.executable, "--check-only"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
    )
    text = proc.stdout.decode()
    assert proc.returncode == 2 and "the profile needs 3.6" in text and "Traceback" not in text, text
