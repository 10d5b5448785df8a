"""STAD training data, and the teacher + student saved as edgefl checkpoints and loaded back.

Checkpoints are ordinary edgefl checkpoint directories (registry names ``stad_teacher`` /
``stad_student``); the STAD-specific facts (band count and selection, score definition) are recorded under
config["stad"], so a checkpoint can never be applied with the wrong C (spec pitfall).
"""

from pathlib import Path

from edgefl.errors import EdgeflError
from edgefl.stad.blobs import anomaly_free
from edgefl.stad.prep import prepare_cube
from edgefl.stad.config import StadSettings

TEACHER_DIR, STUDENT_DIR = "teacher", "student"
SCORE_DEFINITIONS = {
    "gradient": "max_c |d/dx mean(w * sum_k (o_k - x)^2)|, w = STF(x), x = global min-max of selected bands",
    "recon": "max_c w * sum_k (o_k - x)^2, w = STF(x), x = global min-max of selected bands",
}


def training_cubes(scenes: list, cfg: StadSettings) -> list:
    """Normalised, band-selected, anomaly-free C×H×W cubes of the training scenes."""
    if not scenes:
        raise EdgeflError("no training scenes — pass at least one with --scenes")
    cubes = []
    for s in scenes:
        x = prepare_cube(s.cube, cfg.channels, cfg.band_mode, s.name)
        if min(x.shape[1:]) < cfg.crop:
            raise EdgeflError(
                f"scene {s.name} is {x.shape[1]}×{x.shape[2]}, smaller than the {cfg.crop}-pixel "
                "training crop — use a larger scene or a smaller --crop"
            )
        cubes.append(anomaly_free(x, s.gt))
    return cubes


def parameter_count(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def _checkpoint_config(kind: str, model, cfg: StadSettings, history: dict) -> dict:
    args = (
        {
            "channels": cfg.channels,
            "ffn": cfg.teacher_ffn,
            "tile": cfg.teacher_tile,
            "norm_first": cfg.teacher_norm_first,
        }
        if kind == "teacher"
        else {"channels": cfg.channels, "hidden": cfg.student_hidden, "kernel": cfg.student_kernel}
    )
    return {
        "model": f"stad_{kind}",
        "model_args": args,
        "input_shape": [cfg.channels, None, None],
        "num_classes": None,
        "data": history.get("scenes"),
        "metrics": {
            "final_loss": history[f"{kind}_loss"][-1] if history.get(f"{kind}_loss") else None,
            "parameters": parameter_count(model),
        },
        "stad": {
            "role": kind,
            "channels": cfg.channels,
            "band_mode": cfg.band_mode,
            "score": cfg.score,
            "score_definition": SCORE_DEFINITIONS[cfg.score],
            "training": cfg.to_dict(),
            "blob_restoration": history.get("blob_restoration"),
        },
    }


def save_stad(out_dir, result, cfg: StadSettings) -> dict:
    """Write out_dir/teacher and out_dir/student checkpoints of a STAD run; returns {role: path}.

    Args:
        result: the CompressionResult of ``edgefl.stad.METHOD`` (student = ``model``, ``parts``: teacher,
            history).
        cfg: the settings it ran with.
    """
    from edgefl.checkpoint import save_checkpoint

    out, history = Path(out_dir), result.parts["history"]
    return {
        kind: str(save_checkpoint(out / sub, model, _checkpoint_config(kind, model, cfg, history)))
        for kind, sub, model in (
            ("teacher", TEACHER_DIR, result.parts["teacher"]),
            ("student", STUDENT_DIR, result.model),
        )
    }


def load_stad(path):
    """Load a STAD checkpoint directory (or a `compress stad` output dir → its student).

    Returns:
        (model in eval mode, config["stad"] dict).
    """
    from edgefl.checkpoint import load_checkpoint

    path = Path(path)
    if (path / STUDENT_DIR / "config.json").is_file():
        path = path / STUDENT_DIR
    ckpt = load_checkpoint(path)
    stad = ckpt.config.get("stad")
    if not stad:
        raise EdgeflError(
            f"{path} is not a STAD checkpoint (no 'stad' section) — train one with `edgefl compress stad`"
        )
    return ckpt.model, stad


def default_path(stad: dict) -> str:
    """The detect path a checkpoint is meant for: the device graph for a student, torch for a teacher."""
    score = stad.get("score", "gradient")
    if stad.get("role") == "student":
        return "graph-recon" if score == "recon" else "graph"
    return score
