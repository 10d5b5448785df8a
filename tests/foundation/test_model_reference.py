"""Models by reference: the pure resolver, --model-arg parsing, bad factories through the console script,
and the checkpoint's record of the source (sha256) that later commands check."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgefl.errors import EdgeflError
from edgefl.models.reference import (
    ModelReference,
    accepted_arguments,
    parse_model_args,
    resolve_model_reference,
)

EDGEFL = str(Path(sys.executable).with_name("edgefl"))
ZOO = ("resnet20", "small_cnn")


def test_resolver_tells_the_three_forms_apart(tmp_path):
    assert resolve_model_reference("resnet20", ZOO) == ModelReference("resnet20", "zoo", "resnet20")
    assert resolve_model_reference("mypkg.nets:build", ZOO) == ModelReference(
        "mypkg.nets:build", "module", "mypkg.nets", "build"
    )
    ref = resolve_model_reference("models/net.py:make_net", ZOO, base=tmp_path)
    assert (ref.kind, ref.target, ref.factory) == ("file", str(tmp_path / "models" / "net.py"), "make_net")
    assert resolve_model_reference("/abs/net.py:f", ZOO, base=tmp_path).target == "/abs/net.py"


@pytest.mark.parametrize(
    "text,needle",
    [
        ("resnet99", "unknown model 'resnet99' — give a zoo name (resnet20, small_cnn)"),
        ("net.py", "unknown model 'net.py'"),
        (":build", "unknown model ':build'"),
        ("my-pkg.nets:build", "unknown model 'my-pkg.nets:build'"),
        ("net.py:2build", "'2build' is not a factory name"),
    ],
)
def test_resolver_refuses_what_it_cannot_read(text, needle):
    with pytest.raises(EdgeflError) as refused:
        resolve_model_reference(text, ZOO)
    assert needle in str(refused.value)


def test_model_args_are_json_scalars_or_strings():
    args = parse_model_args(
        ["width=2", "rate=0.5", "bn=true", "act=relu", "extra=null", "dims=[1,2]", 's="x"']
    )
    assert args == {
        "width": 2,
        "rate": 0.5,
        "bn": True,
        "act": "relu",
        "extra": None,
        "dims": "[1,2]",
        "s": "x",
    }
    with pytest.raises(EdgeflError, match="must look like key=value"):
        parse_model_args(["width"])


def test_only_the_arguments_a_factory_takes_are_added():
    def plain(width=4):
        return width

    def open_ended(**kw):
        return kw

    data = {"in_channels": 1, "num_classes": 10}
    assert accepted_arguments(plain, data, {"width": 8}) == {"width": 8}
    assert accepted_arguments(open_ended, data, {}) == data


def edgefl(*argv, cwd=None, env=None):
    return subprocess.run(
        [EDGEFL, *map(str, argv)], capture_output=True, text=True, timeout=600, check=False, cwd=cwd, env=env
    )


def tiny_data(path: Path) -> Path:
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    x = (y[:, None, None] * 80 + rng.integers(0, 40, (60, 8, 8))).astype(np.uint8)
    np.savez(path, x=x, y=y)
    return path


NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                                  nn.Flatten())
        self.out = nn.Linear(16, classes)

    def forward(self, x):
        return self.out(self.body(x))


def build(num_classes=3, {extra}):
    {body}
"""


def model_file(path: Path, body="return Net(num_classes)", extra="scale=1") -> Path:
    path.write_text(textwrap.dedent(NET).replace("{extra}", extra).replace("{body}", body))
    return path


def assert_refused(proc, needle, out: Path):
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "body,needle",
    [
        ("raise ValueError('width must be even')", "raised ValueError: width must be even"),
        ("return {'not': 'a model'}", "returned a dict, not a torch nn.Module"),
        ("return Net(num_classes) +", "has a syntax error at line"),
    ],
)
def test_bad_factories_are_one_line_and_write_nothing(tmp_path, body, needle):
    data = tiny_data(tmp_path / "d.npz")
    net = model_file(tmp_path / "net.py", body=body)
    assert_refused(
        edgefl("train", "--model", f"{net}:build", "--data", data, "--out", tmp_path / "ck"),
        needle,
        tmp_path / "ck",
    )


def test_a_missing_factory_and_an_unknown_argument_are_named(tmp_path):
    data = tiny_data(tmp_path / "d.npz")
    net = model_file(tmp_path / "net.py")
    assert_refused(
        edgefl("train", "--model", f"{net}:make", "--data", data, "--out", tmp_path / "ck"),
        "net.py has no factory 'make' (it defines Net, build)",
        tmp_path / "ck",
    )
    assert_refused(
        edgefl(
            "train",
            "--model",
            f"{net}:build",
            "--model-arg",
            "depth=3",
            "--data",
            data,
            "--out",
            tmp_path / "ck",
        ),
        "unexpected keyword argument 'depth'",
        tmp_path / "ck",
    )


def test_the_checkpoint_records_the_source_and_refuses_a_changed_one(tmp_path):
    data = tiny_data(tmp_path / "d.npz")
    net = model_file(tmp_path / "net.py")
    ck = tmp_path / "ck"
    proc = edgefl(
        "train",
        "--model",
        "net.py:build",
        "--model-arg",
        "scale=2",
        "--data",
        data,
        "--epochs",
        "1",
        "--out",
        ck,
        "--json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads((ck / "config.json").read_text())
    assert config["model"] == "net.py:build" and config["model_args"] == {"num_classes": 3, "scale": 2}
    source = config["model_source"]
    assert source["kind"] == "file" and source["path"] == str(net) and source["factory"] == "build"
    import hashlib

    assert source["sha256"] == hashlib.sha256(net.read_bytes()).hexdigest()

    from edgefl.checkpoint import load_checkpoint

    assert type(load_checkpoint(ck).model).__name__ == "Net"  # rebuilt from the record, from any directory
    net.write_text(net.read_text() + "\n# edited\n")
    out = tmp_path / "bundle"
    proc = edgefl("export", ck, "--profile", "jetson-tx2", "--out", out)
    assert_refused(
        proc,
        f"model source {net} changed since checkpoint {ck} was made (recorded sha256 "
        f"{source['sha256'][:12]}…, now",
        out,
    )
    net.unlink()
    proc = edgefl("export", ck, "--profile", "jetson-tx2", "--out", out)
    assert_refused(
        proc, f"was trained with model file {net} (sha256 {source['sha256'][:12]}…), which is missing", out
    )


def test_a_package_module_reference(tmp_path):
    package = tmp_path / "site" / "mynets"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    model_file(package / "small.py")
    data = tiny_data(tmp_path / "d.npz")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    proc = edgefl(
        "train",
        "--model",
        "mynets.small:build",
        "--data",
        data,
        "--epochs",
        "1",
        "--out",
        tmp_path / "ck",
        "--json",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    source = json.loads((tmp_path / "ck" / "config.json").read_text())["model_source"]
    assert source["kind"] == "module" and source["module"] == "mynets.small"
    assert source["path"] == str(package / "small.py")
    assert_refused(
        edgefl("train", "--model", "mynets.missing:build", "--data", data, "--out", tmp_path / "x", env=env),
        "cannot find module mynets.missing",
        tmp_path / "x",
    )
