"""Pure logic of the TensorRT builder/engine (runtime/trt_build.py, runtime/trt_engine.py).

No TensorRT here: a tiny fake ``trt`` namespace stands in ONLY for the API-shape differences between
TensorRT 8.2 and 10.x (which calls are made, with which arguments). Real TensorRT was not run.
"""

import subprocess
import types

import numpy as np
import pytest

from edgefl.runtime import trt_build, trt_engine
from edgefl.runtime.errors import EdgeRuntimeError


class Recorder:
    def __init__(self, **attrs):
        self.calls = []
        self.__dict__.update(attrs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def record(*args):
            self.calls.append((name,) + args)
            return Recorder() if name.startswith("create") else None

        return record


def fake_trt(version):
    return types.SimpleNamespace(
        __version__=version,
        NetworkDefinitionCreationFlag=types.SimpleNamespace(EXPLICIT_BATCH=0),
        MemoryPoolType=types.SimpleNamespace(WORKSPACE="WORKSPACE"),
        BuilderFlag=types.SimpleNamespace(FP16="FP16", INT8="INT8"),
    )


class FakeBuilder(Recorder):
    def __init__(self, fast_fp16=True, fast_int8=True, api_8_2=True):
        super().__init__(platform_has_fast_fp16=fast_fp16, platform_has_fast_int8=fast_int8)
        self.config = Config82() if api_8_2 else Recorder()

    def create_builder_config(self):
        return self.config


class Config82(Recorder):
    """TensorRT 8.2's config: workspace is a plain attribute (no set_memory_pool_limit yet)."""

    max_workspace_size = 0


def test_network_creation_differs_per_line():
    builder = FakeBuilder()
    trt_build.API_SHAPES[8]["network"](fake_trt("8.2.1.8"), builder)
    trt_build.API_SHAPES[10]["network"](fake_trt("10.3.0"), builder)
    assert builder.calls == [("create_network", 1), ("create_network", 0)]  # 1 << EXPLICIT_BATCH, then 0


def test_trt_8_2_config_uses_max_workspace_size_and_flags():
    builder = FakeBuilder()
    plan = trt_build.engine_plan("fp16", 512)
    config = trt_build.configure_builder(
        fake_trt("8.2.1"), builder, None, plan, "8.2.1", "input", [1, 28, 28]
    )
    assert config.max_workspace_size == 512 << 20
    assert ("set_flag", "FP16") in config.calls
    assert not any(c[0] == "set_memory_pool_limit" for c in config.calls)


def test_trt_10_config_uses_memory_pool_limit_and_dynamic_profile():
    builder = FakeBuilder(api_8_2=False)
    plan = trt_build.engine_plan("int8", 2048, batch=32, dynamic_batch=True, calibration="calib.npy")
    calibrator = object()
    config = trt_build.configure_builder(
        fake_trt("10.3.0"), builder, None, plan, "10.3.0", "input", [1, 28, 28], calibrator
    )
    assert ("set_memory_pool_limit", "WORKSPACE", 2048 << 20) in config.calls
    assert [c[1] for c in config.calls if c[0] == "set_flag"] == ["INT8", "FP16"]
    assert config.int8_calibrator is calibrator
    profile_calls = [c for c in config.calls if c[0] == "add_optimization_profile"]
    assert len(profile_calls) == 1
    profile = profile_calls[0][1]
    assert profile.calls == [("set_shape", "input", (1, 1, 28, 28), (32, 1, 28, 28), (32, 1, 28, 28))]


def test_int8_is_refused_not_downgraded_on_a_gpu_without_fast_int8():
    builder = FakeBuilder(fast_int8=False)
    with pytest.raises(EdgeRuntimeError, match="no fast INT8"):
        trt_build.configure_builder(
            fake_trt("8.2.1"),
            builder,
            None,
            trt_build.engine_plan("int8", 256),
            "8.2.1",
            "input",
            [1, 28, 28],
        )


@pytest.mark.parametrize(
    "precision,fp16,int8,flags",
    [
        ("fp32", True, True, []),
        ("fp16", True, False, ["FP16"]),
        ("int8", True, True, ["INT8", "FP16"]),
        ("int8", False, True, ["INT8"]),
    ],
)
def test_builder_flags(precision, fp16, int8, flags):
    assert trt_build.builder_flags(precision, fp16, int8) == flags


def test_version_lines():
    assert trt_build.api_line("8.2.1.8") == 8 and trt_build.api_line("10.3.0.26") == 10
    with pytest.raises(EdgeRuntimeError, match="removed builder precision flags"):
        trt_build.api_line("11.4.0")
    with pytest.raises(EdgeRuntimeError, match="not supported"):
        trt_build.api_line("7.1.3")


def test_engine_stamp_round_trip_and_mismatch():
    header = {"tensorrt_version": "8.2.1.8", "compute_capability": "62", "precision": "fp16"}
    blob = trt_build.stamp_engine(b"\x00plan-bytes", header)
    read, plan = trt_build.read_stamped_engine(blob)
    assert read == header and plan == b"\x00plan-bytes"
    trt_build.check_stamp(read, "8.2.1.8", "62")
    with pytest.raises(EdgeRuntimeError, match="rebuild it"):
        trt_build.check_stamp(read, "8.2.3.0", "62")
    with pytest.raises(EdgeRuntimeError, match="rebuild it"):
        trt_build.check_stamp(read, "8.2.1.8", "53")
    with pytest.raises(EdgeRuntimeError, match="no EFLE stamp"):
        trt_build.read_stamped_engine(b"plain plan")
    assert trt_build.engine_file_name("fp16", "8.2.1.8", "62") == "model.fp16.trt8.2.1.8.sm62.engine"


class Engine82:
    num_bindings = 3
    names = ["input", "logits", "features"]
    shapes = [(-1, 1, 28, 28), (-1, 10), (-1, 64)]

    def get_binding_name(self, i):
        return self.names[i]

    def binding_is_input(self, i):
        return i == 0

    def get_binding_shape(self, i):
        return self.shapes[i]

    def get_binding_dtype(self, i):
        return "float"


class Engine10(Engine82):
    num_io_tensors = 3

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return "IN" if name == "input" else "OUT"

    def get_tensor_shape(self, name):
        return self.shapes[self.names.index(name)]

    def get_tensor_dtype(self, name):
        return "float"


@pytest.mark.parametrize("engine", [Engine82(), Engine10()], ids=["8.2-bindings", "10.x-named"])
def test_io_tensors_and_shapes_for_both_api_shapes(engine):
    trt = types.SimpleNamespace(TensorIOMode=types.SimpleNamespace(INPUT="IN"), nptype=lambda d: np.float32)
    tensors = trt_engine.io_tensors(engine, trt)
    assert [(t["name"], t["is_input"]) for t in tensors] == [
        ("input", True),
        ("logits", False),
        ("features", False),
    ]
    shapes = trt_engine.resolve_shapes(tensors, {"input": np.zeros((4, 1, 28, 28), np.float32)})
    assert shapes == {"input": (4, 1, 28, 28)}
    with pytest.raises(EdgeRuntimeError, match="has shape"):
        trt_engine.resolve_shapes(tensors, {"input": np.zeros((4, 3, 28, 28), np.float32)})
    with pytest.raises(EdgeRuntimeError, match="lacks input"):
        trt_engine.resolve_shapes(tensors, {})


class Context82:
    """TensorRT 8.2 execution context: bindings by index only."""

    def __init__(self):
        self.calls = []

    def set_binding_shape(self, index, shape):
        self.calls.append(("set_binding_shape", index, shape))


class Context10:
    """TensorRT 10 execution context: inputs by name."""

    def __init__(self):
        self.calls = []

    def set_input_shape(self, name, shape):
        self.calls.append(("set_input_shape", name, shape))


@pytest.mark.parametrize(
    "context,call",
    [
        (Context82(), ("set_binding_shape", 0, (2, 1, 28, 28))),
        (Context10(), ("set_input_shape", "input", (2, 1, 28, 28))),
    ],
)
def test_dynamic_input_shape_goes_through_the_context_api(context, call):
    tensors = [
        {"name": "input", "index": 0, "is_input": True, "shape": (-1, 1, 28, 28)},
        {"name": "logits", "index": 1, "is_input": False, "shape": (-1, 10)},
    ]
    trt_engine.set_input_shapes(context, tensors, {"input": (2, 1, 28, 28)})
    assert context.calls == [call]


def test_without_tensorrt_the_builder_says_so():
    available, reason = trt_build.tensorrt_available()
    assert available is False and "tensorrt" in reason


def test_build_engine_cli_without_tensorrt_is_one_line(tx2_bundle, capsys):
    assert trt_build.main([str(tx2_bundle.bundle_dir)]) == 2  # fp32 ONNX bundle: no engine plan
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no engine plan" in err


EDGE36_SCRIPT = """
import types
from edgefl.runtime import trt_build, trt_engine
plan = trt_build.engine_plan("fp16", 256, batch=8, dynamic_batch=True)
assert plan["batch"] == {"min": 1, "opt": 8, "max": 8}
assert trt_build.builder_flags("int8", True, True) == ["INT8", "FP16"]
assert trt_build.api_line("8.2.1.8") == 8
blob = trt_build.stamp_engine(b"plan", {"tensorrt_version": "8.2.1.8", "compute_capability": "62"})
assert trt_build.read_stamped_engine(blob)[1] == b"plan"

class Config(object):
    max_workspace_size = 0
    def __init__(self):
        self.flags = []
    def set_flag(self, flag):
        self.flags.append(flag)

class Builder(object):
    platform_has_fast_fp16 = True
    platform_has_fast_int8 = False
    def __init__(self):
        self.config = Config()
    def create_builder_config(self):
        return self.config
    def create_network(self, flags):
        self.network_flags = flags

trt = types.SimpleNamespace(BuilderFlag=types.SimpleNamespace(FP16="FP16", INT8="INT8"),
                            NetworkDefinitionCreationFlag=types.SimpleNamespace(EXPLICIT_BATCH=0))
builder = Builder()
trt_build.API_SHAPES[8]["network"](trt, builder)
shape = [1, 28, 28]
fp16, int8 = trt_build.engine_plan("fp16", 64), trt_build.engine_plan("int8", 64)
config = trt_build.configure_builder(trt, builder, None, fp16, "8.2.1.8", "input", shape)
assert builder.network_flags == 1 and config.max_workspace_size == 64 << 20 and config.flags == ["FP16"]
try:
    trt_build.configure_builder(trt, builder, None, int8, "8.2.1.8", "input", shape)
    raise SystemExit("int8 was not refused")
except trt_build.EdgeRuntimeError:
    pass
print("ok")
"""


def edge36_env(tmp_path):
    """PYTHONPATH for the device's view: a bare ``edgefl`` package holding only ``runtime``."""
    import os

    import edgefl.runtime

    shim = tmp_path / "edge36" / "edgefl"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("")
    os.symlink(os.path.dirname(edgefl.runtime.__file__), str(shim / "runtime"))
    return dict(os.environ, PYTHONPATH=str(tmp_path / "edge36"))


def test_trt_logic_runs_under_python_3_6(python36, tmp_path):
    """The edge stack imports the real modules (numpy 1.19, no tensorrt) and runs their pure logic."""
    proc = subprocess.run(
        [python36, "-c", EDGE36_SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=edge36_env(tmp_path),
        cwd=str(tmp_path),
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.decode().strip() == "ok", proc.stderr.decode()[-2000:]


def test_device_build_engine_command_without_tensorrt(python36, resnet20_checkpoint, tmp_path):
    """`python -m edgefl.runtime build-engine BUNDLE` on the Python 3.6 stack: one line, exit 2, no engine."""
    from edgefl.export.pipeline import ExportRequest, export_checkpoint

    bundle = tmp_path / "trt"
    export_checkpoint(
        ExportRequest(resnet20_checkpoint, "jetson-tx2", "fp16", "tensorrt", bundle, parity_samples=16)
    )
    proc = subprocess.run(
        [python36, "-m", "edgefl.runtime", "build-engine", str(bundle)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=edge36_env(tmp_path),
        cwd=str(tmp_path),
        check=False,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert "tensorrt Python module is not installed" in err and "run build-engine on the device" in err
    assert not list(bundle.glob("*.engine"))
