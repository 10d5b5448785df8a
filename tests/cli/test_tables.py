"""Tables and progress read whole at 80 columns: no word is ever split across lines, on a terminal or piped.

Layout rules are unit-tested with hand-worked widths and a property over random tables; the promise is
then checked through the installed console script, output piped (`| cat`) and COLUMNS unset, for the
commands that print tables without training anything (the README journey test runs the others piped too).
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from edgefl.cli.tables import (FitTable, Layout, choose_layout, fit_widths, plain_lines, wrap_line,
                               wrapped_lines)
from edgefl.progress import PlainProgress, fitting_bars

EDGEFL = shutil.which("edgefl", path=os.path.dirname(sys.executable)) or "edgefl"


def rendered(renderable, width: int) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, markup=False, emoji=False, highlight=False, soft_wrap=True)
    console.print(renderable)
    return buf.getvalue()


def whole_on_a_line(text: str, words) -> list:
    """The words that do not appear whole on some line of text (a split word is on no single line)."""
    lines = text.splitlines()
    whole = {w: re.compile(rf"(?<![\w.-]){re.escape(w)}(?![\w.-])") for w in words}
    return [w for w, pattern in whole.items() if not any(pattern.search(line) for line in lines)]


def test_natural_widths_when_they_fit():
    assert fit_widths([10, 7, 20], [10, 7, 5], 40) == [10, 7, 20]


def test_narrow_columns_keep_their_width_and_the_wide_one_wraps():
    # room 30: minima 10 + 7 + 5 = 22; the 7- and 10-wide columns get theirs, the 20-wide one what is left
    assert fit_widths([10, 7, 20], [10, 7, 5], 30) == [10, 7, 13]


def test_no_widths_when_a_word_cannot_fit():
    assert fit_widths([10, 7, 20], [10, 7, 15], 30) is None


def test_layouts_degrade_from_boxed_to_compact_to_lines():
    columns = ["name", "JetPack", "Python", "TensorRT"]
    rows = [["jetson-agx-xavier", "5.1", "3.8", "8.5"]]
    # natural 17 + 7 + 6 + 8 = 38; boxed adds 3·4 + 1 = 13, compact 2·3 = 6
    assert choose_layout(columns, rows, 51).name == "boxed"
    assert choose_layout(columns, rows, 50).name == "compact"
    assert choose_layout(columns, rows, 44).name == "compact"
    assert choose_layout(columns, rows, 43).name == "lines"
    assert plain_lines("profiles", columns, rows + [["x86-rtx", "", "3.12", "10.3"]]) == [
        "profiles", "jetson-agx-xavier: JetPack 5.1, Python 3.8, TensorRT 8.5",
        "x86-rtx: Python 3.12, TensorRT 10.3"]
    assert plain_lines("", ["field", "value"], [["digest", "d7f4"], ["rejected", "0"]]) == [
        "digest: d7f4", "rejected: 0"]


def test_cells_wrap_between_words_on_at_most_three_lines_else_plain_lines():
    assert wrapped_lines("ORT Q/DQ as written vs torch", 12) == 3  # "ORT Q/DQ as" "written vs" "torch"
    assert wrapped_lines("a\nb c", 3) == 2 and wrapped_lines("", 5) == 1
    columns, rows = ["check", "runner", "gate"], [["int8", "ORT Q/DQ as written vs torch", "top-1 ≥ 97.0%"]]
    assert choose_layout(columns, rows, 60) == Layout("boxed", [5, 28, 13])  # 46 + 10 of box
    assert choose_layout(columns, rows, 50) == Layout("compact", [5, 28, 13])  # 46 + 4 between columns
    assert choose_layout(columns, rows, 40) == Layout("boxed", [5, 12, 13])  # the runner on 3 lines
    # the narrowest widths that keep every cell on 3 lines: runner 10 ("ORT Q/DQ" "as written" "vs torch"),
    # gate 5 ("top-1" "≥" "97.0%"): 20, boxed in 30, compact in 24; at 23 plain lines
    assert choose_layout(columns, rows, 30) == Layout("boxed", [5, 10, 5])
    assert choose_layout(columns, rows, 24).name == "compact"
    assert choose_layout(columns, rows, 23).name == "lines"


words = st.from_regex(r"[a-z]{1,14}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(
    n_columns=st.integers(1, 9),
    cells=st.lists(st.lists(words, min_size=1, max_size=5), min_size=9 * 4, max_size=9 * 4),
    width=st.integers(20, 160),
)
def test_no_layout_splits_a_word(n_columns, cells, width):
    serial = iter(range(10**6))
    text = [" ".join(f"{w}{next(serial)}" for w in cell) for cell in cells]  # every word unique
    columns = text[:n_columns]
    body = [text[i:i + n_columns] for i in range(n_columns, 4 * n_columns, n_columns)]
    table = FitTable("a title", columns, body)
    out = rendered(table, width)
    lines = table.layout(width).name == "lines"
    # plain lines name rows by their first cell, without its header; a two-column table shows no header
    hidden = (n_columns if n_columns <= 2 else 1) if lines else 0
    shown = text[hidden:4 * n_columns]
    assert whole_on_a_line(out, " ".join(shown).split()) == []
    # within the width; plain lines may pass it only with a single word longer than the width
    assert [line for line in out.splitlines() if len(line.rstrip()) > width and not (
        lines and len(line.split()) == 1)] == []


def test_plain_progress_writes_whole_lines_at_the_end_of_each_task():
    stream = io.StringIO()
    progress = PlainProgress(stream, every_s=3600)
    task = progress.task("training resnet20 on a very long dataset path/with/parts", 3)
    task.advance(2, epoch=1, loss=0.51234)
    assert stream.getvalue() == ""
    task.advance(1, epoch=1, loss=0.25)
    task.close()
    (line,) = stream.getvalue().splitlines()
    assert line.startswith("training resnet20 on a very long dataset path/with/parts: 3/3 in ")
    assert line.endswith("epoch 1  loss 0.25")


def test_plain_lines_wrap_between_words_and_keep_a_long_word_whole():
    line = "simulate: seconds 25.5, result 3 satellites, 4.5 h simulated in runs/demo-with-a-long-name/sim/x"
    assert wrap_line(line, 30) == ["simulate: seconds 25.5, result", "  3 satellites, 4.5 h",
                                   "  simulated in", "  runs/demo-with-a-long-name/sim/x"]
    assert wrap_line("a\nb c", 30) == ["a", "b c"] and wrap_line("", 30) == [""]


@pytest.mark.parametrize("width", [120, 80, 60])
def test_bars_on_a_terminal_cut_no_count_time_or_word(width):
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None)
    bars = fitting_bars(console)
    bars.add_task("in-orbit federation (sim min)", total=480, completed=240, info="sync 8.9%  async 8.9%")
    bars.add_task("training", total=8, completed=3, info="epoch 1  loss 2.305")
    console.print(bars.make_tasks_table(bars.tasks))
    out = buf.getvalue()
    words = "in-orbit federation (sim min) 240/480 sync 8.9% async training 3/8 epoch 1 loss 2.305".split()
    assert whole_on_a_line(out, [*words, "0:00:00", "-:--:--"]) == [] and "…" not in out, out
    assert max(len(line.rstrip()) for line in out.splitlines()) <= width
    if width >= 80:  # room for every column: one line per task, the bar takes what is left
        assert len(out.splitlines()) == 2, out


# ------------------------------------------------------------------ through the console script, piped


def piped(command: str, cwd=None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run(f"{EDGEFL} {command} | cat", shell=True, env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def as_json(command: str, cwd=None):
    return json.loads(subprocess.run([EDGEFL, *command.split(), "--json"], capture_output=True, text=True,
                                     check=True, cwd=cwd, timeout=600).stdout)


def test_profiles_list_and_show_piped():
    out = piped("profiles list")
    profiles = as_json("profiles list")
    expected = ["JetPack", "Python", "TensorRT", "opset", "default"]
    expected += [str(p[k]) for p in profiles for k in ("name", "jetpack", "python", "tensorrt") if p[k]]
    assert whole_on_a_line(out, expected) == []
    shown = piped("profiles show jetson-tx2")
    facts = as_json("profiles show jetson-tx2")
    assert whole_on_a_line(shown, [w for v in facts.values() if isinstance(v, str) for w in v.split()]) == []


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    from edgefl.checkpoint import save_checkpoint
    from edgefl.data import MNIST_PREPROCESSING
    from edgefl.models import build_model

    torch.manual_seed(0)
    args = {"in_channels": 1, "num_classes": 10, "width": 8, "hidden": 32}
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "small", build_model("small_cnn", **args), {
        "model": "small_cnn", "model_args": args, "input_shape": [1, 28, 28], "num_classes": 10,
        "labels": None, "preprocessing": MNIST_PREPROCESSING, "data": "mnist"})


def test_export_bench_and_the_federation_tables_piped(tmp_path, checkpoint):
    bundle = tmp_path / "a bundle with a long name in a folder" / "for-the-jetson-tx2-fp32"
    out = piped(f"export {checkpoint} --profile jetson-tx2 --parity-samples 64 --out '{bundle}'")
    manifest = json.loads((bundle / "manifest.json").read_text())
    checks = [*manifest["parity"], *manifest.get("parity_info", {})]
    header = ["check", "runner", "samples", "cosine", "top-1", "agree", "gate", "result"]
    assert whole_on_a_line(out, [*header, *checks, "PASS", "ORT", "jetson-tx2"]) == [], out
    assert whole_on_a_line(out, str(bundle).split()) == [], out

    out = piped(f"bench '{bundle}' --iterations 5 --warmup 1")
    assert whole_on_a_line(out, [*str(bundle).split(), "p50_ms", "p99_ms", "onnxruntime"]) == [], out

    out = piped(f"federation init orbit --clients 3 --out {tmp_path}/fed-with-a-long-folder-name-x")
    assert whole_on_a_line(out, [f"{tmp_path}/fed-with-a-long-folder-name-x/clients/client-002/agent.json",
                                 "client-002", "mosquitto.conf"]) == [], out

    out = piped(f"data partition --clients 10 --out {tmp_path}/parts.json")
    record = as_json(f"data partition --clients 10 --out {tmp_path}/parts2.json")
    counts = [str(c) for v in record["clients"].values() for c in [v["examples"], *v["class_counts"]]]
    assert whole_on_a_line(out, ["client-009", "examples", *counts]) == [], out

    out = piped(f"simulate --clients 4 --planes 2 --hours 2 --write-schedule {tmp_path}/s.json")
    assert whole_on_a_line(out, ["contacts", f"{tmp_path}/s.json"]) == [], out


def test_cells_read_as_words_not_python_reprs():
    from edgefl.cli.common import _cell

    assert _cell({"round": 16760, "snapshot": 0, "status": 304}) == "round 16760, snapshot 0, status 304"
    assert _cell(["a", 1.23456789, None]) == "a, 1.235, " and _cell(True) == "yes"
    assert _cell({"numpy": "1.19.5", "ok": False}) == "numpy 1.19.5, ok no"
