"""GHOST vs its ablations on ResNet-20 and the shipped MNIST split (seeded).

Rows (same teacher, same QAT epochs, batch, learning rate and seed):
  FP32 teacher · GHOST (HQ bits + GQSD with OST/SCM) · the same HQ bits without distillation ·
  uniform 4-bit QAT without distillation.
Columns: accuracy, drop vs FP (points), mean bits, size, size ratio, BOPs, BOPs ratio, gate open rate.
Prints a rich table and writes bench/results/ghost.json.

    python bench/ghost.py --jobs 4                 # trains the teacher, then the QAT rows side by side
    python bench/ghost.py --teacher CKPT_DIR       # reuse an FP checkpoint (edgefl train ... --out)

Recorded run (bench/results/ghost.json): teacher from `--fp-epochs 4 --save-teacher DIR`, then
`--teacher DIR --epochs 3 --lr 0.02 --kd-weights 400,1000 --jobs 4` (the defaults).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "ghost.json"


TEACHER_CONFIG = {
    "model": "resnet20",
    "model_args": {"in_channels": 1, "num_classes": 10},
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "data": "mnist",
}


def _teacher_checkpoint(args, train, test, preprocessing, workdir: Path) -> tuple[Path, float]:
    """The FP teacher as a checkpoint directory: the given one, or one trained here (seeded)."""
    from edgefl.checkpoint import save_checkpoint
    from edgefl.models import build_model
    from edgefl.train import seed_everything, train_classifier

    if args.teacher:
        return Path(args.teacher), 0.0
    seed_everything(args.seed)
    model = build_model("resnet20", in_channels=1, num_classes=10)
    start = time.perf_counter()
    train_classifier(
        model,
        train,
        test,
        epochs=args.fp_epochs,
        lr=0.1,
        batch_size=128,
        seed=args.seed,
        preprocessing=preprocessing,
    )
    seconds = time.perf_counter() - start
    path = Path(args.save_teacher) if args.save_teacher else workdir / "teacher"
    save_checkpoint(path, model, {**TEACHER_CONFIG, "preprocessing": preprocessing})
    return path, seconds


def _run_row(teacher_path: str, config_kwargs: dict, seed: int, threads: int) -> dict:
    """One quantized row (also the body of a worker process): load teacher, run GHOST, summarise."""
    import torch

    from edgefl.checkpoint import load_checkpoint
    from edgefl.compress.method import ClassifierData
    from edgefl.ghost import GhostSettings
    from edgefl.methods import ghost
    from edgefl.data import MNIST_PREPROCESSING, load_mnist, train_test_split

    torch.set_num_threads(threads)
    train, test = train_test_split(load_mnist(), 0.2, seed)
    teacher = load_checkpoint(teacher_path).model
    start = time.perf_counter()
    data = ClassifierData(train, test, MNIST_PREPROCESSING)
    result = ghost(teacher, data, settings=GhostSettings(**config_kwargs))
    history = result.extra["history"]
    open_rates = [r for h in history for r in h.get("gate_open_rate", [])]
    return {
        "seconds": time.perf_counter() - start,
        "bits": result.extra["bits"],
        "tau": result.extra["tau"],
        "metrics": result.totals,
        "history": history,
        "gate_open_rate": sum(open_rates) / len(open_rates) if open_rates else None,
    }


def _row(name, out, fp_acc):
    m = out["metrics"]
    return {
        "method": name,
        "accuracy": m["accuracy_after"],
        "drop_points": 100 * (fp_acc - m["accuracy_after"]),
        "mean_bits": m["mean_bits"],
        "size_kib": m["size_bytes"] / 1024,
        "size_ratio": m["size_ratio"],
        "bops_g": m["bops"] / 1e9,
        "bops_ratio": m["bops_ratio"],
        "gate_open_rate": out["gate_open_rate"],
        "seconds": round(out["seconds"], 1),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--teacher", help="FP resnet20 checkpoint dir to reuse (else one is trained)")
    p.add_argument("--save-teacher", help="write the trained teacher checkpoint here")
    p.add_argument("--fp-epochs", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3, help="QAT epochs of every quantized row")
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--tau",
        type=float,
        default=120.0,
        help="HQ threshold (120: 5/4/3 bits per ResNet-20 stage; official 0.1: all 8)",
    )
    p.add_argument("--target-bits", type=float, default=None, help="pick tau for this mean bit width")
    p.add_argument("--min-bits", type=int, default=2)
    p.add_argument("--kd-weights", default="400,1000", help="comma list: one GHOST row per OST weight")
    p.add_argument("--gate-margin", type=float, default=1.0)
    p.add_argument("--uniform-bits", type=int, default=4)
    p.add_argument("--rows", default="ghost,hq,uniform", help="subset of ghost,hq,uniform")
    p.add_argument("--jobs", type=int, default=1, help="run the quantized rows in this many processes")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    import tempfile
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    import torch
    from rich.console import Console
    from rich.table import Table

    from edgefl.checkpoint import load_checkpoint
    from edgefl.data import MNIST_PREPROCESSING, load_mnist, train_test_split
    from edgefl.train import evaluate

    torch.set_num_threads(args.threads)
    train, test = train_test_split(load_mnist(), 0.2, args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="edgefl-bench-ghost-"))
    teacher_path, fp_seconds = _teacher_checkpoint(args, train, test, MNIST_PREPROCESSING, workdir)
    fp_acc = evaluate(load_checkpoint(teacher_path).model, test, MNIST_PREPROCESSING)["accuracy"]
    common = dict(
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        gate_margin=args.gate_margin,
        tau=None if args.target_bits is not None else args.tau,  # --target-bits picks tau itself
        target_mean_bits=args.target_bits,
        bit_range=(args.min_bits, 8),
    )
    kd_weights = [float(v) for v in args.kd_weights.split(",")]
    variants = {
        f"ghost@{kd:g}": (f"GHOST (HQ + OST/SCM, kd {kd:g})", dict(common, kd_weight=kd)) for kd in kd_weights
    }
    variants |= {
        "hq": ("HQ, no distillation", dict(common, distill=False)),
        "uniform": (
            f"uniform {args.uniform_bits}-bit QAT",
            dict(common, distill=False, uniform_bits=args.uniform_bits),
        ),
    }
    keys = [
        k
        for row in args.rows.split(",")
        for k in ([v for v in variants if v.startswith("ghost@")] if row == "ghost" else [row])
    ]
    unknown = [k for k in keys if k not in variants]
    if unknown:
        raise SystemExit(f"unknown rows {unknown} — use a subset of {','.join(variants)}")
    jobs = [(str(teacher_path), variants[k][1], args.seed, args.threads) for k in keys]
    if args.jobs > 1:  # same work, run side by side in fresh processes (each loads the teacher checkpoint)
        with ProcessPoolExecutor(min(args.jobs, len(jobs)), mp_context=get_context("spawn")) as pool:
            outs = list(pool.map(_run_row, *zip(*jobs)))
    else:
        outs = [_run_row(*job) for job in jobs]
    rows = [
        {
            "method": "FP32 teacher",
            "accuracy": fp_acc,
            "drop_points": 0.0,
            "mean_bits": 32.0,
            "size_ratio": 1.0,
            "bops_ratio": 1.0,
            "seconds": round(fp_seconds, 1),
        }
    ]
    rows += [_row(variants[k][0], out, fp_acc) for k, out in zip(keys, outs)]
    details = {k: {key: v for key, v in out.items() if key != "seconds"} for k, out in zip(keys, outs)}
    if outs:  # the FP reference's size and BOPs (same architecture at 32/32)
        rows[0].update(
            size_kib=outs[0]["metrics"]["size_bytes_ref"] / 1024, bops_g=outs[0]["metrics"]["bops_ref"] / 1e9
        )

    table = Table(title=f"GHOST on ResNet-20 / MNIST split (seed {args.seed}, {args.epochs} QAT epochs)")
    cols = [
        "method",
        "accuracy",
        "drop_points",
        "mean_bits",
        "size_kib",
        "size_ratio",
        "bops_g",
        "bops_ratio",
        "gate_open_rate",
        "seconds",
    ]
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*[f"{r[c]:.4g}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols])
    console = Console(width=max(Console().width, 150))
    console.print(table)

    baselines = [r for r in rows[1:] if not r["method"].startswith("GHOST")]
    checks = {}
    for ghost in (r for r in rows if r["method"].startswith("GHOST")):
        checks[ghost["method"]] = {
            "bops_ratio>=30": ghost["bops_ratio"] >= 30,
            "size_ratio>=8": ghost["size_ratio"] >= 8,
            "drop<=1pt": ghost["drop_points"] <= 1.0,
            **{f"beats {r['method']}": ghost["accuracy"] > r["accuracy"] for r in baselines},
        }
        console.print(
            ghost["method"], {k: ("PASS" if v else "FAIL") for k, v in checks[ghost["method"]].items()}
        )
    out = {
        "bench": "ghost",
        "model": "resnet20",
        "data": "mnist (shipped t10k split, train_test_split 0.2 seed %d)" % args.seed,
        "settings": vars(args) | {"out": str(args.out)},
        "definitions": {
            "bops": "sum MACs*w_bits*a_bits; a_bits = bits of the input quantizer (= previous conv's), "
            "first conv input and FP32 classifier at 32",
            "size": "weights*w_bits + biases and BN affine at 32 bits (theoretical)",
        },
        "torch_threads": torch.get_num_threads(),
        "rows": rows,
        "checks": checks,
        "details": details,
    }
    shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
