"""`python -m edgefl.runtime`: dispatch, config errors as one line, public names."""
import importlib
import json
import subprocess
import sys

import pytest

from edgefl.runtime.__main__ import main

MODULES = ["wire", "codecs", "strategies", "validate", "transport"]


def test_build_engine_is_dispatched_lazily(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "edgefl.runtime", "build-engine", "--help"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(tmp_path))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"bundle" in out, err


def test_config_problems_are_one_line_exit_2(tmp_path, capsys):
    assert main(["agent", "--config", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read config" in err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"aggregator": {"federation": "f", "wrong_key": 1}, "model": "x"}))
    assert main(["aggregate", "--config", str(bad)]) == 2
    assert "wrong_key" in capsys.readouterr().err
    bad.write_text(json.dumps({"aggregator": {"federation": "f", "codec": "zip"}, "model": "x"}))
    assert main(["aggregate", "--config", str(bad)]) == 2
    assert "codec must be one of" in capsys.readouterr().err


@pytest.mark.parametrize("name", MODULES)
def test_public_names_exist(name):
    mod = importlib.import_module("edgefl.runtime." + name)
    for attr in getattr(mod, "__all__", []):
        assert hasattr(mod, attr), "{}.{}".format(name, attr)


def test_a_bad_fold_kernel_setting_stops_the_aggregator_in_one_line(tmp_path):
    import os

    import numpy as np

    from edgefl.runtime.config import save_model_tensors

    save_model_tensors(str(tmp_path / "m.safetensors"), {"w": np.zeros(4, np.float32)}, {})
    cfg = tmp_path / "agg.json"
    cfg.write_text(json.dumps({"aggregator": {"federation": "f"},
                               "model": str(tmp_path / "m.safetensors"),
                               "mqtt": {"url": "mqtt://127.0.0.1:9"}}))
    env = dict(os.environ, EDGEFL_FOLD_KERNEL="fastest")
    proc = subprocess.Popen([sys.executable, "-m", "edgefl.runtime", "aggregate", "--config",
                             str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=str(tmp_path), env=env)
    out, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and "EDGEFL_FOLD_KERNEL='fastest': use one of" in err, err
