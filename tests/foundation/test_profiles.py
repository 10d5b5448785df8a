import tomllib

import pytest

from edgefl.errors import EdgeflError
from edgefl.export.profiles import list_profiles, load_profile, load_profile_file, profile_from_dict

EXPECTED = {"jetson-tx2", "jetson-tx2-nx", "jetson-nano", "jetson-xavier-nx", "jetson-agx-xavier",
            "jetson-orin-nano", "jetson-orin-nx", "jetson-agx-orin", "x86-rtx", "rpi5-cpu"}

def _path(name):
    import importlib.resources

    return str(importlib.resources.files("edgefl.device_profiles") / f"{name}.toml")

def test_all_shipped_profiles_load():
    assert {p.name for p in list_profiles()} == EXPECTED

def test_tx2_facts():
    p = load_profile("jetson-tx2")
    assert (p.max_opset, p.fast_int8, p.python, p.tensorrt, p.jetpack) == (13, False, "3.6", "8.2", "4.6")

@pytest.mark.parametrize("name,opset,int8", [("jetson-nano", 13, False), ("jetson-xavier-nx", 17, True),
                                             ("jetson-agx-orin", 20, True), ("jetson-orin-nano", 20, True)])
def test_opset_and_int8_per_jetpack_line(name, opset, int8):
    p = load_profile(name)
    assert (p.max_opset, p.fast_int8) == (opset, int8)

def test_missing_field_is_named():
    d = tomllib.loads(open(_path("jetson-tx2")).read())
    del d["max_opset"]
    with pytest.raises(EdgeflError, match="missing field 'max_opset'"):
        profile_from_dict(d, "x.toml")

@pytest.mark.parametrize("field,value", [("max_opset", "13"), ("fast_int8", 0), ("memory_gb", "8"),
                                         ("dla_cores", True), ("python", 3.6)])
def test_wrong_type_is_named(field, value):
    d = tomllib.loads(open(_path("jetson-tx2")).read())
    d[field] = value
    with pytest.raises(EdgeflError, match=f"field '{field}' must be"):
        profile_from_dict(d, "x.toml")

def test_bad_choice_and_unknown_field(tmp_path):
    text = open(_path("jetson-tx2")).read()
    (tmp_path / "a.toml").write_text(text.replace('default_precision = "fp16"', 'default_precision = "fp8"'))
    with pytest.raises(EdgeflError, match="default_precision"):
        load_profile_file(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text('max_opsett = 3\n' + text)
    with pytest.raises(EdgeflError, match="unknown field"):
        load_profile_file(tmp_path / "b.toml")

def test_unknown_profile_lists_choices():
    with pytest.raises(EdgeflError, match="jetson-tx2"):
        load_profile("jetson-tx3")
