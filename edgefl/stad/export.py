"""Export the STAD student as an edgefl bundle whose single output is the anomaly map.

The generic ``edgefl export`` pipeline targets classifiers (outputs ``logits`` + ``features``, a
classification head); STAD needs a different graph, so this module is the small adapter: it exports
``scoregraph.StudentScoreGraph`` (input ``cube`` = 1×C×H×W raw values of the selected bands, H and W
dynamic; output ``score`` = 1×H×W; normalisation, STF, the student and the score — the weighted
reconstruction error or the analytic input gradient, as the checkpoint records — inside the graph)
with the TorchScript exporter at the profile's opset, runs onnx's full checker, measures parity against
the torch score of the same definition on the shipped scenes, and writes the bundle with
``edgefl.export``'s manifest builder and publisher (``head`` is null: there is no classifier head to
fine-tune). ``edgefl.runtime.engine.open_engine``
runs it unchanged; band selection is the only host-side step, described in ``preprocessing["stad"]``.
"""

import io
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from edgefl.errors import EdgeflError
from edgefl.stad.pipeline import STUDENT_DIR

INPUT_NAME, OUTPUT_NAME = "cube", "score"
PARITY_TOLERANCE = 1e-4  # max |onnx − autograd| / max |autograd| on a scene


def onnx_from_student(student, channels: int, opset: int, score: str = "gradient"):
    """StudentScoreGraph (score "gradient" or "recon") → ONNX ModelProto with dynamic height/width."""
    import onnx
    import torch

    from edgefl.stad.scoregraph import StudentScoreGraph

    graph = StudentScoreGraph(student, score=score).eval()
    example = torch.rand(1, channels, 24, 20)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (example,),
            buf,
            dynamo=False,
            opset_version=opset,
            do_constant_folding=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {2: "height", 3: "width"}, OUTPUT_NAME: {1: "height", 2: "width"}},
        )
    proto = onnx.load_from_string(buf.getvalue())
    proto.producer_name = "edgefl"
    return proto


def onnx_score(model_path, cube_chw: np.ndarray) -> np.ndarray:
    """Run an exported score graph with onnxruntime on one C×H×W raw cube → H×W."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(model_path), sess_options=so, providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(cube_chw[None], np.float32)})[0][0]


def parity_on_scenes(student, stad: dict, model_path, scenes: list) -> dict:
    """ONNX score vs the torch score of the same definition per scene, with AUC(D,F) of both.

    The torch reference is autograd for "gradient" and the plain torch student for "recon"."""
    from edgefl.stad.detect import SCORE_PATHS, path_agreement
    from edgefl.stad.metrics import roc_auc
    from edgefl.stad.prep import chw_from_hwc, minmax_normalize, select_bands

    per_scene = {}
    for s in scenes:
        raw = chw_from_hwc(select_bands(s.cube, stad["channels"], stad["band_mode"], s.name))
        ref = SCORE_PATHS[stad.get("score", "gradient")](
            student,
            chw_from_hwc(
                minmax_normalize(select_bands(s.cube, stad["channels"], stad["band_mode"], s.name), s.name)
            ),
        )
        got = onnx_score(model_path, raw)
        entry = path_agreement(ref, got)
        if s.gt is not None:
            entry.update(auc_df_torch=roc_auc(ref, s.gt), auc_df_onnx=roc_auc(got, s.gt))
        per_scene[s.name] = entry
    worst = max((e["max_rel_diff"] for e in per_scene.values()), default=0.0)
    return {
        "reference": f"torch score '{stad.get('score', 'gradient')}' (edgefl.stad.detect)",
        "max_rel_diff": worst,
        "tolerance": PARITY_TOLERANCE,
        "passed": bool(worst <= PARITY_TOLERANCE),
        "scenes": per_scene,
    }


def export_stad_bundle(
    checkpoint, out, profile: str = "jetson-tx2", scenes=None, precision: str = "fp32"
) -> dict:
    """Export a STAD student checkpoint to a verified bundle directory.

    Args:
        checkpoint: a student checkpoint dir, or a `compress stad` output dir.
        out: bundle directory to write (replaced if it is a bundle).
        profile: device profile name (sets the opset ceiling, recorded in the manifest).
        scenes: HSIScene list for the parity check (default: the 4 shipped scenes).
        precision: only "fp32" (the STF's RX runs in float64 inside the graph; reduced precision is not
            verified for STAD).
    Returns:
        the manifest dict.
    """
    import onnx

    from edgefl import __version__
    from edgefl.data import SHIPPED_SCENES, load_hsi_scene
    from edgefl.export.assemble import check_out, publish
    from edgefl.export.bundle import MODEL_FILE, build_manifest, io_spec
    from edgefl.export.profiles import load_profile
    from edgefl.runtime.bundle import hash_files, write_document
    from edgefl.stad.pipeline import load_stad, parameter_count

    if precision != "fp32":
        raise EdgeflError(f"STAD bundles are exported in fp32 only, not {precision} — use --precision fp32")
    prof = load_profile(profile)
    student, stad = load_stad(checkpoint)
    if stad.get("role") != "student":
        raise EdgeflError(
            f"{checkpoint} holds the STAD {stad.get('role')}; only the student is exported — "
            "pass the student checkpoint"
        )
    opset = min(int(prof.max_opset), 17)
    out = Path(out)
    check_out(out)  # before any heavy work
    proto = onnx_from_student(student, stad["channels"], opset, stad.get("score", "gradient"))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=str(out.parent)))
    try:
        model_path = staging / MODEL_FILE
        onnx.save(proto, str(model_path))
        onnx.checker.check_model(str(model_path), full_check=True)
        scenes = scenes if scenes is not None else [load_hsi_scene(n) for n in SHIPPED_SCENES]
        parity = parity_on_scenes(student, stad, model_path, scenes)
        if not parity["passed"]:
            raise EdgeflError(
                f"exported STAD score differs from torch by {parity['max_rel_diff']:.2e} "
                f"(> {PARITY_TOLERANCE}) — report this export bug"
            )
        c = stad["channels"]
        manifest = build_manifest(
            edgefl_version=__version__,
            model="stad_student",
            inputs=[io_spec(INPUT_NAME, (1, c, "height", "width"))],
            outputs=[io_spec(OUTPUT_NAME, (1, "height", "width"))],
            preprocessing={
                "stad": {
                    "channels": c,
                    "band_mode": stad["band_mode"],
                    "layout": "raw selected bands as 1×C×H×W; min-max normalisation, STF and "
                    "the score run inside the graph",
                    "score": stad.get("score"),
                    "score_definition": stad.get("score_definition"),
                }
            },
            labels=None,
            profile=prof.to_dict(),
            precision="fp32",
            opset=opset,
            compression={
                "method": "stad",
                "student_parameters": parameter_count(student),
                "training": stad.get("training"),
            },
            parity=parity,
            parity_info={},
            verification={"onnx_checker": "full_check passed"},
            settings={"format": "onnx", "precision": "fp32"},
            engine=None,
            files=hash_files(str(staging), [MODEL_FILE]),
            head=None,  # no classifier head to fine-tune on the device
        )
        manifest = write_document(str(staging), "bundle", manifest)  # the one writer: sealed
        publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def is_stad_checkpoint(path) -> bool:
    """A STAD checkpoint (or a `compress stad` output folder): the STAD exporter handles it."""
    from edgefl.checkpoint import read_config

    path = Path(path)
    if (path / STUDENT_DIR / "config.json").is_file():
        return True
    try:
        return bool(read_config(path).get("stad"))
    except EdgeflError:
        return False  # not a checkpoint STAD knows; the classifier exporter reports what is wrong


def export_bundle(checkpoint, out, profile: str, precision: str = "fp32", fmt: str = "onnx") -> dict:
    """STAD's registry export hook (``edgefl export`` routes STAD checkpoints here).

    Raises:
        EdgeflError: a format other than onnx — the STF computes in float64, which TensorRT does not.
    """
    if fmt != "onnx":
        raise EdgeflError(
            "STAD bundles run in onnxruntime only (the filter computes in float64) — use --format onnx"
        )
    return export_stad_bundle(checkpoint, out, profile, precision=precision)
