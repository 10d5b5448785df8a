"""The library calls behind `edgefl compress stad` and `edgefl detect` (the CLI modules only adapt).

* ``compress_stad`` — load scenes, train teacher + student, save both checkpoints (+ optionally the
  device bundle), return a summary dict.
* ``detect_scene`` — anomaly map of one scene from a STAD checkpoint (torch) or bundle (onnxruntime via
  ``edgefl.runtime``), written as ``<scene>_score.npy`` + ``<scene>_map.png`` (+ ``<scene>_roc.png`` and
  metrics when the scene has ground truth).
"""

import json
import time
from pathlib import Path

import numpy as np

from edgefl.errors import EdgeflError
from edgefl.stad.config import StadSettings


def load_scenes(specs, cube_key=None, gt_key=None) -> list:
    """Shipped names or file paths (comma-separated entries allowed) → HSIScene list."""
    from edgefl.data import load_hsi_scene

    names = [s.strip() for spec in specs for s in str(spec).split(",") if s.strip()]
    if not names:
        raise EdgeflError("no scenes given — pass --scenes abu-urban-2,hydice or .mat/.npy paths")
    return [load_hsi_scene(n, cube_key=cube_key, gt_key=gt_key) for n in names]


def compress_stad(
    scene_specs, out, cfg: StadSettings, progress=None, export_profile=None, cube_key=None, gt_key=None
) -> dict:
    """Train a STAD teacher and student on anomaly-free versions of the scenes and save them under `out`.

    Args:
        scene_specs: shipped scene names or .mat/.npy paths (ground-truth anomalies are in-painted away).
        out: output directory (gets teacher/, student/ and, with export_profile, bundle/).
        cfg: StadSettings.
        progress: an edgefl.progress object or None.
        export_profile: device profile name → also export the device bundle to out/bundle.
    """
    from edgefl.compress.method import run
    from edgefl.stad import METHOD
    from edgefl.stad.pipeline import save_stad

    scenes = load_scenes(scene_specs, cube_key, gt_key)
    t0 = time.perf_counter()
    trained = run(METHOD, None, scenes, cfg, progress)
    seconds = time.perf_counter() - t0
    paths = save_stad(out, trained, cfg)
    result = {
        "scenes": [s.name for s in scenes],
        "out": str(out),
        "checkpoints": paths,
        "train_seconds": seconds,
        **trained.totals,
        "config": cfg.to_dict(),
    }
    if export_profile:
        from edgefl.stad.export import export_stad_bundle

        manifest = export_stad_bundle(paths["student"], Path(out) / "bundle", export_profile)
        result["bundle"] = str(Path(out) / "bundle")
        result["bundle_parity_max_rel_diff"] = manifest["parity"]["max_rel_diff"]
    return result


def _is_bundle(path: Path) -> bool:
    return (path / "manifest.json").is_file()


def bundle_score(bundle_dir, cube_hwb: np.ndarray, scene: str = "scene") -> np.ndarray:
    """Anomaly map from an exported STAD bundle, run by edgefl.runtime's onnxruntime engine."""
    from edgefl.runtime.engine import open_engine
    from edgefl.stad.prep import chw_from_hwc, select_bands

    engine = open_engine(str(bundle_dir), backend="onnxruntime")
    try:
        stad = (engine.manifest.get("preprocessing") or {}).get("stad")
        if not stad:
            raise EdgeflError(
                f"{bundle_dir} is not a STAD bundle (no preprocessing.stad) — export a STAD student"
            )
        raw = chw_from_hwc(select_bands(cube_hwb, stad["channels"], stad["band_mode"], scene))
        return np.asarray(engine.infer({"cube": raw[None]})["score"][0], np.float32)
    finally:
        engine.close()


def detect_scene(model_path, scene_spec, out, path=None, cube_key=None, gt_key=None, gt_path=None) -> dict:
    """Write the anomaly map of one scene (and its metrics when ground truth exists).

    Args:
        model_path: STAD bundle dir, student/teacher checkpoint dir, or a `compress stad` output dir.
        scene_spec: .mat/.npy path or shipped scene name.
        out: output directory.
        path: score path for checkpoints (default: 'graph' for a student, 'gradient' for a teacher).
    """
    from edgefl.data import load_hsi_scene
    from edgefl.stad.metrics import had_metrics, save_detection_map, save_roc_plot, threshold_curves

    model_path = Path(model_path)
    if not model_path.exists():
        raise EdgeflError(f"{model_path} not found — pass a STAD bundle or checkpoint directory")
    scene = load_hsi_scene(scene_spec, cube_key=cube_key, gt_key=gt_key, gt_path=gt_path)
    t0 = time.perf_counter()
    if _is_bundle(model_path):
        score, used = bundle_score(model_path, scene.cube, scene.name), "bundle (onnxruntime, edgefl.runtime)"
    else:
        from edgefl.stad.detect import detect_cube
        from edgefl.stad.pipeline import default_path, load_stad

        model, stad = load_stad(model_path)
        used = path or default_path(stad)
        score = detect_cube(
            model, scene.cube, stad["channels"], stad["band_mode"], path=used, scene=scene.name
        ).score
    seconds = time.perf_counter() - t0
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"score": out / f"{scene.name}_score.npy", "map": out / f"{scene.name}_map.png"}
    np.save(str(files["score"]), score, allow_pickle=False)
    save_detection_map(score, files["map"], scene.gt, title=f"STAD {scene.name}")
    result = {
        "scene": scene.name,
        "shape": list(scene.cube.shape),
        "model": str(model_path),
        "score_path": used,
        "seconds": seconds,
        "metrics": None,
    }
    if scene.gt is not None:
        files["roc"] = out / f"{scene.name}_roc.png"
        save_roc_plot({"STAD": threshold_curves(score, scene.gt)}, files["roc"], title=scene.name)
        result["metrics"] = had_metrics(score, scene.gt)
        files["metrics"] = out / f"{scene.name}_metrics.json"
        files["metrics"].write_text(json.dumps(result["metrics"], indent=2) + "\n")
    result["files"] = {k: str(v) for k, v in files.items()}
    return result
