"""The one precision-rule function, table-tested against every shipped profile."""

import pytest

from edgefl.errors import EdgeflError
from edgefl.export.precision import FORMATS, PRECISIONS, resolve_export_settings
from edgefl.export.profiles import list_profiles, load_profile

# (profile, precision, format) -> engine precision that must come back, or a phrase the refusal must hold.
TABLE = [
    ("jetson-tx2", "fp32", "onnx", None),
    ("jetson-tx2", "int8", "onnx", None),
    ("jetson-tx2", "fp32", "tensorrt", "fp32"),
    ("jetson-tx2", "fp16", "tensorrt", "fp16"),
    ("jetson-tx2", "int8", "tensorrt", "refused: --precision fp16 --format tensorrt"),
    ("jetson-tx2-nx", "int8", "tensorrt", "refused: no fast INT8"),
    ("jetson-nano", "int8", "tensorrt", "refused: --precision int8 --format onnx"),
    ("jetson-xavier-nx", "int8", "tensorrt", "int8"),
    ("jetson-agx-xavier", "int8", "tensorrt", "int8"),
    ("jetson-agx-orin", "int8", "tensorrt", "int8"),
    ("jetson-agx-orin", "fp16", "tensorrt", "fp16"),
    ("rpi5-cpu", "fp32", "tensorrt", "refused: has no TensorRT"),
    ("rpi5-cpu", "int8", "onnx", None),
    ("jetson-tx2", "fp16", "onnx", "refused: --format tensorrt --precision fp16"),
]


@pytest.mark.parametrize("name,precision,fmt,expected", TABLE)
def test_rule_table(name, precision, fmt, expected):
    profile = load_profile(name)
    if expected is not None and expected.startswith("refused: "):
        with pytest.raises(EdgeflError) as info:
            resolve_export_settings(profile, precision, fmt)
        assert expected[len("refused: ") :] in str(info.value)
        assert "\n" not in str(info.value)
        return
    settings = resolve_export_settings(profile, precision, fmt)
    assert settings.engine_precision == expected
    assert settings.opset == profile.max_opset


@pytest.mark.parametrize("profile", list_profiles(), ids=lambda p: p.name)
def test_every_profile_never_downgrades(profile):
    """Every combination either returns exactly what was asked or raises EdgeflError with a fix."""
    for precision in PRECISIONS:
        for fmt in FORMATS:
            try:
                settings = resolve_export_settings(profile, precision, fmt)
            except EdgeflError as exc:
                assert " — " in str(exc) and "use " in str(exc)  # says what to do instead
                if fmt == "tensorrt" and precision == "int8":
                    assert not profile.fast_int8 or not profile.has_tensorrt
                continue
            assert settings.precision == precision and settings.format == fmt
            assert settings.opset == profile.max_opset
            if fmt == "tensorrt":
                assert settings.engine_precision == precision and settings.runtime == "tensorrt"
                assert profile.has_tensorrt
                if precision == "int8":
                    assert profile.fast_int8
                if precision == "fp16":
                    assert profile.fast_fp16
            else:
                assert settings.engine_precision is None and settings.runtime == "onnxruntime"
                expected = "int8-qdq" if precision == "int8" else "fp32"
                assert settings.onnx_precision == expected


def test_int8_ort_path_calibrates_on_host_and_trt_path_on_device():
    tx2, orin = load_profile("jetson-tx2"), load_profile("jetson-agx-orin")
    assert resolve_export_settings(tx2, "int8", "onnx").calibration == "ort-static-qdq"
    assert resolve_export_settings(orin, "int8", "tensorrt").calibration == "trt-entropy"


def test_quantized_checkpoints_need_int8_and_skip_recalibration():
    orin = load_profile("jetson-agx-orin")
    with pytest.raises(EdgeflError, match="use --precision int8"):
        resolve_export_settings(orin, "fp16", "tensorrt", quantized_model=True)
    settings = resolve_export_settings(orin, "int8", "tensorrt", quantized_model=True)
    assert settings.calibration == "none" and settings.onnx_precision == "int8-qdq"
    assert resolve_export_settings(orin, "int8", "onnx", quantized_model=True).calibration == "none"


@pytest.mark.parametrize(
    "precision,fmt,needle", [("int4", "onnx", "unknown precision"), ("fp32", "tflite", "unknown format")]
)
def test_unknown_values_list_the_choices(precision, fmt, needle):
    with pytest.raises(EdgeflError, match=needle):
        resolve_export_settings(load_profile("jetson-tx2"), precision, fmt)


def test_tensorrt_11_has_no_implicit_int8_calibration():
    import dataclasses

    future = dataclasses.replace(load_profile("x86-rtx"), name="x86-trt11", tensorrt="11.4")
    with pytest.raises(EdgeflError, match="removed implicit INT8 calibration"):
        resolve_export_settings(future, "int8", "tensorrt")
    assert resolve_export_settings(future, "int8", "tensorrt", quantized_model=True).calibration == "none"
