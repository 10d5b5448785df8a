"""The CLI through Typer's CliRunner-free entry point (main returns the exit code; stderr captured)."""
import json

import pytest

from edgefl.cli.app import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_profiles_show_tx2(capsys):
    code, out, _ = run(capsys, "profiles", "show", "jetson-tx2", "--json")
    facts = json.loads(out)
    assert code == 0 and facts["max_opset"] == 13 and facts["fast_int8"] is False
    assert facts["python"] == "3.6" and facts["tensorrt"] == "8.2"


def test_profiles_list_table(capsys):
    code, out, _ = run(capsys, "profiles", "list")
    assert code == 0 and "jetson-agx-orin" in out and "rpi5-cpu" in out


@pytest.mark.parametrize("argv,needle", [
    (["train", "--model", "resnet99", "--out", "{tmp}/x"], "unknown model 'resnet99'"),
    (["train", "--data", "{tmp}/missing.npz", "--out", "{tmp}/x"], "not found"),
    (["profiles", "show", "jetson-tx9"], "unknown device profile"),
])
def test_bad_input_is_one_line_and_nonzero(capsys, tmp_path, argv, needle):
    code, out, err = run(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_corrupt_checkpoint_via_cli(capsys, tmp_path):
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "config.json").write_text("garbage")
    from edgefl.cli.app import COMMANDS

    assert "export" in COMMANDS
    from edgefl.checkpoint import load_checkpoint
    from edgefl.errors import EdgeflError

    with pytest.raises(EdgeflError, match="corrupt"):
        load_checkpoint(ck)


def test_train_writes_checkpoint_and_json(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--model", "small_cnn", "--epochs", "1", "--batch-size", "32",
                       "--out", str(tmp_path / "ck"),
                       "--json")
    result = json.loads(out)
    assert code == 0 and (tmp_path / "ck" / "model.safetensors").exists()
    assert "training" in err  # progress stays on stderr with --json (only --quiet silences it)
    assert result["test_accuracy"] > 0.9 and result["train_examples"] == 8000
