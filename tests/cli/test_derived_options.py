"""`simulate` and `demo` take their options from the settings they configure (SimConfig, DemoConfig), the way
`aggregate` takes AggregatorConfig's: a field is an option, with its docstring's help line, in the command
line's units."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest

from edgefl.cli import derive

EDGEFL = shutil.which("edgefl", path=os.path.dirname(sys.executable)) or "edgefl"


@pytest.mark.parametrize("module, config, skip", [
    ("edgefl.cli.simulate", "edgefl.sim.simulate:SimConfig", ("startup_wall_s",)),
    ("edgefl.cli.demo", "edgefl.demo:DemoConfig", ()),
])
def test_every_settings_field_is_an_option_with_a_help_line(module, config, skip):
    import importlib

    cli = importlib.import_module(module)
    mod, name = config.split(":")
    cls = getattr(importlib.import_module(mod), name)
    fields = [f.name for f in dataclasses.fields(cls)]
    params = cli.command.__signature__.parameters
    assert [f for f in fields if f not in params] == list(skip)
    assert set(cli.FIELDS) <= set(fields)
    assert set(derive.attribute_docs(cls)) == set(fields), f"every {name} field has a help line"


def test_values_come_back_in_the_settings_units():
    from edgefl.cli.simulate import FIELDS
    from edgefl.sim.simulate import SimConfig

    values = derive.field_values(SimConfig, {"duration_s": 2.5, "train_time_s": 10.0, "train": [("lr", 0.05)],
                                             "stations": None, "out": "x"}, FIELDS)
    assert values == {"duration_s": 9000.0, "train_time_s": 600.0, "stations": ["svalbard", "troll"],
                      "train": {"epochs": 1, "lr": 0.05, "batch_size": 32}}


def test_simulate_hours_on_the_command_line_are_seconds_in_the_schedule(tmp_path):
    done = subprocess.run([EDGEFL, "simulate", "--clients", "4", "--planes", "2", "--hours", "1.5",
                           "--station", "svalbard", "--write-schedule", str(tmp_path / "s.json"), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["duration_s"] == 5400 and summary["satellites"] == 4 and summary["stations"] == 1
