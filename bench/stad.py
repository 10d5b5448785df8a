"""STAD on the four shipped scenes: global RX vs STAD teacher vs STAD student (on-device path).

    OMP_NUM_THREADS=1 python bench/stad.py [--teacher-steps N] [--student-steps N] [--no-loso]

Main table: one STAD model trained on anomaly-free versions of all four scenes (ground-truth anomalies
in-painted away), evaluated on each scene. The student runs as it does on the device: the exported
bundle (forward-only score graph) through ``edgefl.runtime``'s onnxruntime engine, 1 thread. The teacher
runs in torch (tiled attention). STAD scores use the
checkpoint's score definition (default: weighted reconstruction error); the full input-gradient score is
reported beside it. RX runs on the same input (the selected bands);
RX on all bands and on 10 evenly spaced bands is reported as a reference. Latency: median of repeated runs
on this CPU, one thread. Leave-one-scene-out: a model trained on the other three scenes, evaluated on the
held-out one. Ablations on the main student: no STF (w = 1), the full input-gradient score, the student
at its random initialisation (what training adds); the STF alone. --seeds N repeats the main model with
N seeds (spread). Writes bench/results/stad.json and figures under bench/results/stad/.
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SCENES = ("abu-urban-2", "abu-beach-4", "hydice", "pavia")
KEYS = ("auc_df", "auc_ftau", "auc_dtau", "snpr_db")


def timed(fn, repeat=3):
    """(result of the last call, median seconds)."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def pick(metrics):
    return {k: metrics[k] for k in KEYS}


def rx_entry(cube_hwc, gt):
    from edgefl.stad.metrics import had_metrics
    from edgefl.stad.rx import rx_scores

    score, sec = timed(lambda: rx_scores(cube_hwc))
    return score, {**pick(had_metrics(score, gt)), "latency_s": sec}


def train(scenes, cfg, label, log):
    from edgefl.methods import stad

    t = time.perf_counter()
    models = stad(None, scenes, settings=cfg)  # CompressionResult: model = student, parts = teacher, history
    restored = models.totals["blob_restoration"]
    log(f"trained {label} in {time.perf_counter() - t:.0f} s (blob restoration {restored:.3f})")
    return models, time.perf_counter() - t


def export_bundle(models, workdir, name, cfg):
    from edgefl.stad.export import export_stad_bundle
    from edgefl.stad.pipeline import save_stad

    paths = save_stad(Path(workdir) / name, models, cfg)
    bundle = Path(workdir) / name / "bundle"
    manifest = export_stad_bundle(paths["student"], bundle, "jetson-tx2", scenes=[])
    return bundle, manifest


def evaluate(models, bundle, scene, cfg, repeat):
    """RX / teacher / student-on-device metrics and latencies for one scene."""
    from edgefl.runtime.engine import open_engine
    from edgefl.stad.detect import SCORE_PATHS, gradient_score, graph_score, path_agreement, recon_score
    from edgefl.stad.metrics import had_metrics, threshold_curves
    from edgefl.stad.prep import chw_from_hwc, minmax_normalize, select_bands

    selected = select_bands(scene.cube, cfg.channels, cfg.band_mode, scene.name)
    x = chw_from_hwc(minmax_normalize(selected))
    rx, rx_m = rx_entry(np.transpose(x, (1, 2, 0)), scene.gt)
    teacher_fn = SCORE_PATHS[cfg.score]
    teacher, t_sec = timed(lambda: teacher_fn(models.parts["teacher"], x), repeat=max(1, repeat - 1))
    engine = open_engine(str(bundle), backend="onnxruntime", threads=1)
    raw = chw_from_hwc(selected)[None]
    student, s_sec = timed(lambda: engine.infer({"cube": raw})["score"][0], repeat=repeat)
    engine.close()
    score_fn = SCORE_PATHS[cfg.score]
    torch_same = score_fn(models.model, x)  # the same definition in torch
    full = gradient_score(models.model, x)  # the full STAD score: autograd input gradient
    exact_graph = graph_score(models.model, x, score="gradient")
    entry = {
        "rx": rx_m,
        "teacher": {**pick(had_metrics(teacher, scene.gt)), "latency_s": t_sec},
        "student": {**pick(had_metrics(student, scene.gt)), "latency_s": s_sec},
        "student_paths": {
            "device_vs_torch_same_score": path_agreement(torch_same, student),
            "device_vs_full_gradient": path_agreement(full, student),
            "full_gradient_auc_df": had_metrics(full, scene.gt)["auc_df"],
            "exact_gradient_graph_vs_autograd": path_agreement(full, exact_graph),
            "recon_auc_df": had_metrics(recon_score(models.model, x), scene.gt)["auc_df"],
            "no_stf_auc_df": had_metrics(score_fn(models.model, x, False), scene.gt)["auc_df"],
            "untrained_student_auc_df": had_metrics(score_fn(untrained(cfg), x), scene.gt)["auc_df"],
        },
    }
    curves = {
        "RX": threshold_curves(rx, scene.gt),
        "STAD teacher": threshold_curves(teacher, scene.gt),
        "STAD student": threshold_curves(student, scene.gt),
    }
    return entry, curves, student


def untrained(cfg):
    """The student architecture at its random initialisation (eval mode): how much does training add?"""
    import torch

    from edgefl.models.stad_student import StadStudent

    torch.manual_seed(cfg.seed)
    return StadStudent(cfg.channels, hidden=cfg.student_hidden, kernel=cfg.student_kernel).eval()


def references(scene):
    """RX on all bands and on 10 evenly spaced bands, and the STF check (spec §5.1)."""
    from edgefl.stad.metrics import roc_auc
    from edgefl.stad.prep import minmax_normalize, select_bands
    from edgefl.stad.rx import rx_scores

    full = minmax_normalize(scene.cube)
    uni = minmax_normalize(select_bands(scene.cube, 10, "uniform"))
    return {
        "rx_all_bands_auc_df": roc_auc(rx_scores(full), scene.gt),
        "rx_uniform10_auc_df": roc_auc(rx_scores(uni), scene.gt),
    }


def stf_check(scene, cfg):
    from edgefl.stad.metrics import roc_auc
    from edgefl.stad.prep import minmax_normalize, select_bands
    from edgefl.stad.stf import stf_weights

    w = stf_weights(minmax_normalize(select_bands(scene.cube, cfg.channels, cfg.band_mode)))
    return {
        "zero_fraction": float((w == 0).mean()),
        "gt_recall_w_pos": float((w[scene.gt > 0] > 0).mean()),
        "stf_alone_auc_df": roc_auc(w, scene.gt),
    }


def means_auc(per_scene, who):
    return float(np.mean([per_scene[s][who]["auc_df"] for s in per_scene]))


def mean_of(per_scene, who, key):
    return float(np.mean([per_scene[s][who][key] for s in per_scene]))


def main(argv=None):
    import torch
    from rich.console import Console
    from rich.table import Table

    from edgefl.data import load_hsi_scene
    from edgefl.stad.config import StadSettings
    from edgefl.stad.metrics import save_detection_map, save_roc_plot
    from edgefl.stad.pipeline import parameter_count

    defaults = StadSettings()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher-steps", type=int, default=defaults.teacher_steps)
    p.add_argument("--student-steps", type=int, default=defaults.student_steps)
    p.add_argument("--repeat", type=int, default=5, help="timing repeats (median)")
    p.add_argument("--no-loso", action="store_true")
    p.add_argument(
        "--seeds", type=int, default=1, help="extra main-model trainings with seeds +1, +2, ... (spread)"
    )
    p.add_argument("--out", type=Path, default=RESULTS / "stad.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    console = Console(stderr=True)
    log = console.log
    cfg = dataclasses.replace(defaults, teacher_steps=args.teacher_steps, student_steps=args.student_steps)
    scenes = {n: load_hsi_scene(n) for n in SCENES}
    figures = args.out.parent / "stad"
    figures.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="stad-bench-"))

    models, train_s = train(list(scenes.values()), cfg, "main model (4 scenes)", log)
    bundle, manifest = export_bundle(models, work, "main", cfg)
    per_scene = {}
    for name, scene in scenes.items():
        entry, curves, student = evaluate(models, bundle, scene, cfg, args.repeat)
        entry["references"] = references(scene)
        entry["stf"] = stf_check(scene, cfg)
        per_scene[name] = entry
        save_roc_plot(curves, figures / f"{name}_roc.png", title=name)
        save_detection_map(
            student, figures / f"{name}_student_map.png", scene.gt, title=f"STAD student {name}"
        )
        log(
            f"{name}: RX {entry['rx']['auc_df']:.4f}  teacher {entry['teacher']['auc_df']:.4f}  "
            f"student {entry['student']['auc_df']:.4f}"
        )

    seeds = {cfg.seed: {w: means_auc(per_scene, w) for w in ("teacher", "student")}}
    for extra in range(1, args.seeds):
        seed_cfg = dataclasses.replace(cfg, seed=cfg.seed + extra)
        m, _ = train(list(scenes.values()), seed_cfg, f"main model, seed {seed_cfg.seed}", log)
        b, _ = export_bundle(m, work, f"seed-{seed_cfg.seed}", seed_cfg)
        runs = {n: evaluate(m, b, sc, seed_cfg, 1)[0] for n, sc in scenes.items()}
        seeds[seed_cfg.seed] = {w: means_auc(runs, w) for w in ("teacher", "student")}
        log(f"seed {seed_cfg.seed}: {seeds[seed_cfg.seed]}")

    loso = {}
    if not args.no_loso:
        for held in SCENES:
            m, sec = train([s for n, s in scenes.items() if n != held], cfg, f"without {held}", log)
            b, _ = export_bundle(m, work, f"loso-{held}", cfg)
            entry, _, _ = evaluate(m, b, scenes[held], cfg, 1)
            loso[held] = {
                "rx_auc_df": entry["rx"]["auc_df"],
                "teacher_auc_df": entry["teacher"]["auc_df"],
                "student_auc_df": entry["student"]["auc_df"],
                "train_seconds": sec,
                "blob_restoration": m.history["blob_restoration"],
                "student_beats_rx": entry["student"]["auc_df"] > entry["rx"]["auc_df"],
            }
            log(f"LOSO {held}: RX {entry['rx']['auc_df']:.4f}  student {entry['student']['auc_df']:.4f}")

    params = {"teacher": parameter_count(models.parts["teacher"]), "student": parameter_count(models.model)}
    means = {
        who: {k: mean_of(per_scene, who, k) for k in (*KEYS, "latency_s")}
        for who in ("rx", "teacher", "student")
    }
    bar = {
        "student_mean_auc_df_ge_0.95": means["student"]["auc_df"] >= 0.95,
        "student_mean_auc_df_ge_rx": means["student"]["auc_df"] >= means["rx"]["auc_df"],
        "params_ratio_ge_10": params["teacher"] / params["student"] >= 10,
        "speedup_ge_5": means["teacher"]["latency_s"] / means["student"]["latency_s"] >= 5,
        "student_within_0.01_of_teacher": abs(means["student"]["auc_df"] - means["teacher"]["auc_df"])
        <= 0.01,
        "loso_student_beats_rx_everywhere": bool(loso) and all(v["student_beats_rx"] for v in loso.values()),
    }
    result = {
        "config": cfg.to_dict(),
        "train_seconds_main": train_s,
        "blob_restoration_main": models.totals["blob_restoration"],
        "threads": 1,
        "parameters": params,
        "params_ratio": params["teacher"] / params["student"],
        "speedup_teacher_over_student": means["teacher"]["latency_s"] / means["student"]["latency_s"],
        "means": means,
        "per_scene": per_scene,
        "loso": loso,
        "seeds": {
            "mean_auc_df_per_seed": seeds,
            **{
                f"{w}_mean_auc_df_mean_std": [
                    float(np.mean([v[w] for v in seeds.values()])),
                    float(np.std([v[w] for v in seeds.values()])),
                ]
                for w in ("teacher", "student")
            },
        },
        "bar": bar,
        "bundle_parity": manifest["parity"],
        "student_path": "exported bundle (score graph) via edgefl.runtime onnxruntime engine",
        "teacher_path": f"torch score '{cfg.score}', attention tiles of {cfg.teacher_tile} px",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    t = Table(title=f"STAD vs RX — {cfg.channels} bands ({cfg.band_mode}), 1 CPU thread")
    for col in (
        "scene",
        "RX D,F",
        "RX F,τ",
        "teacher D,F",
        "teacher F,τ",
        "student D,F",
        "student F,τ",
        "RX ms",
        "teacher ms",
        "student ms",
        "RX all-band D,F",
    ):
        t.add_column(col)
    for name, e in per_scene.items():
        t.add_row(
            name,
            *[
                f"{e[w]['auc_df']:.4f}" if k == "df" else f"{e[w]['auc_ftau']:.4f}"
                for w in ("rx", "teacher", "student")
                for k in ("df", "ftau")
            ],
            *[f"{1000 * e[w]['latency_s']:.1f}" for w in ("rx", "teacher", "student")],
            f"{e['references']['rx_all_bands_auc_df']:.4f}",
        )
    t.add_row(
        "mean",
        *[
            f"{means[w]['auc_df']:.4f}" if k == "df" else f"{means[w]['auc_ftau']:.4f}"
            for w in ("rx", "teacher", "student")
            for k in ("df", "ftau")
        ],
        *[f"{1000 * means[w]['latency_s']:.1f}" for w in ("rx", "teacher", "student")],
        f"{np.mean([e['references']['rx_all_bands_auc_df'] for e in per_scene.values()]):.4f}",
    )
    out = Console(width=max(Console().width, 160))
    out.print(t)
    out.print(
        f"parameters: teacher {params['teacher']:,}  student {params['student']:,}  "
        f"(×{result['params_ratio']:.1f});  speed-up ×{result['speedup_teacher_over_student']:.1f}"
    )
    if loso:
        lt = Table(title="leave-one-scene-out (AUC(D,F) on the held-out scene)")
        for col in ("held out", "RX", "teacher", "student", "student > RX"):
            lt.add_column(col)
        for name, v in loso.items():
            lt.add_row(
                name,
                f"{v['rx_auc_df']:.4f}",
                f"{v['teacher_auc_df']:.4f}",
                f"{v['student_auc_df']:.4f}",
                "yes" if v["student_beats_rx"] else "no",
            )
        out.print(lt)
    out.print({k: ("pass" if v else "FAIL") for k, v in bar.items()})
    out.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
