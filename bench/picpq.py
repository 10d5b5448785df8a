"""PIC-PQ vs baselines on ResNet-20 and the shipped MNIST split (seeded).

Rows: FP32 reference, PIC-PQ, L1-magnitude pruning + uniform QAT at PIC-PQ's BOPs, uniform 8-bit and
4-bit QAT (same fine-tune + QAT epoch budget). Columns: BOPs ratio, size ratio, accuracy, drop.
Prints a rich table and writes bench/results/picpq.json.

    python bench/picpq.py                         # seed 0 -> bench/results/picpq.json (~15 min, 1 core)
    python bench/picpq.py --seed 1 --out bench/results/picpq_seed1.json
    python bench/picpq_summary.py                 # mean over the seeds run -> picpq_summary.json

Defaults: the float model is `edgefl train`'s (ResNet-20, 5 epochs, peak lr 0.05, seeded), B_max 4 for
every stage (uniform 4-bit QAT is within 0.1 pt of float on MNIST, so 4 bits is the largest width an
unpruned layer needs), keep 90 % of FLOPs; pruned layers lose bits by the rule (>= 1, down to 3).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "picpq.json"


def _row(name, result, seconds):
    t = result.totals
    return {
        "method": name,
        "bops_g": t["bops"] / 1e9,
        "bops_ratio": t["bops_ratio"],
        "size_kib": t["size_bytes"] / 1024,
        "size_ratio": t["size_ratio"],
        "accuracy": t["accuracy_after"],
        "drop_points": t["accuracy_drop_points"],
        "seconds": round(seconds, 1),
    }


def _rms_bits(result) -> int:
    rows = [r for r in result.layers if r["w_bits"] < 32]
    return max(2, round(math.sqrt(sum(r["bops"] for r in rows) / sum(r["macs"] for r in rows))))


def ort_accuracy(fp, picpq, test, prep, shape, work: Path, seed: int = 0) -> dict:
    """Export PIC-PQ via `edgefl export` (jetson-tx2, int8 Q/DQ, opset 13); ORT vs torch accuracy."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from edgefl.checkpoint import save_checkpoint
    from edgefl.compress.qat import tensors
    from edgefl.methods.checkpoints import save_compressed
    from edgefl.export.pipeline import ExportRequest, export_checkpoint

    base = {
        "model": "resnet20",
        "model_args": {"in_channels": 1, "num_classes": 10},
        "input_shape": list(shape),
        "num_classes": 10,
        "preprocessing": prep,
        "data": "mnist",
        "metrics": {"seed": seed, "test_fraction": 0.2},
    }
    save_checkpoint(work / "fp", fp, base)
    ckpt = save_compressed(work / "picpq", picpq, base)
    bundle = export_checkpoint(
        ExportRequest(
            checkpoint=Path(ckpt),
            profile="jetson-tx2",
            precision="int8",
            format="onnx",
            out=work / "bundle",
            parity_samples=500,
        )
    ).bundle_dir
    x, y = tensors(test, prep)
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    ort_logits = np.concatenate(
        [sess.run(["logits"], {name: x[i : i + 1].numpy()})[0] for i in range(len(x))]
    )
    with torch.no_grad():
        torch_logits = picpq.model.eval()(x).numpy()
    return {
        "bundle": str(bundle),
        "accuracy_torch": float((torch_logits.argmax(1) == y.numpy()).mean()),
        "accuracy_onnxruntime": float((ort_logits.argmax(1) == y.numpy()).mean()),
        "top1_agreement": float((ort_logits.argmax(1) == torch_logits.argmax(1)).mean()),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fp-epochs", type=int, default=5)
    p.add_argument("--fp-lr", type=float, default=0.05, help="Peak lr of the float model (edgefl train's).")
    p.add_argument("--fp-checkpoint", type=Path, default=None, help="Reuse a float ResNet-20 checkpoint.")
    p.add_argument("--flops-target", type=float, default=0.9)
    p.add_argument(
        "--max-bits", default="32,4,4,4", help="stem, stage 1..3 (the spec's ResNet-56/CIFAR: 32,8,6,4)"
    )
    p.add_argument("--min-bits", type=int, default=3)
    p.add_argument("--tie-break", default="l1", choices=["l1", "none"])
    p.add_argument("--no-uniform", action="store_true", help="Skip the uniform 8/4-bit rows.")
    p.add_argument("--generations", type=int, default=6)
    p.add_argument("--population", type=int, default=6)
    p.add_argument("--tau-hat", type=int, default=16)
    p.add_argument("--ft-epochs", type=int, default=2)
    p.add_argument("--ft-lr", type=float, default=0.05)
    p.add_argument("--qat-epochs", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--work", type=Path, default=None, help="Keep the FP and PIC-PQ checkpoints and the bundle here."
    )
    p.add_argument(
        "--no-export", action="store_true", help="Skip the ONNX export / onnxruntime accuracy check."
    )
    args = p.parse_args(argv)

    import torch
    from rich.console import Console
    from rich.table import Table

    from edgefl.baselines import MagnitudeSettings, UniformSettings
    from edgefl.compress.method import ClassifierData
    from edgefl.methods import magnitude, picpq, uniform
    from edgefl.picpq import PicpqSettings
    from edgefl.data import MNIST_PREPROCESSING, load_mnist, train_test_split
    from edgefl.models import build_model
    from edgefl.progress import progress_for
    from edgefl.train import seed_everything, train_classifier

    torch.set_num_threads(args.threads)
    train, test = train_test_split(load_mnist(), 0.2, args.seed)
    prep, shape = dict(MNIST_PREPROCESSING), (1, 28, 28)
    budget = args.ft_epochs + args.qat_epochs
    rows, console = [], Console(stderr=True)
    with progress_for(True) as progress:
        t0 = time.perf_counter()
        if args.fp_checkpoint:  # e.g. from `edgefl train --seed N`: the same recipe as the defaults here
            from edgefl.checkpoint import load_checkpoint
            from edgefl.train import evaluate

            ckpt = load_checkpoint(args.fp_checkpoint)
            fp, fp_epochs = ckpt.model, ckpt.config.get("metrics", {}).get("epochs", args.fp_epochs)
            fp_metrics = {"test_accuracy": evaluate(fp, test, prep)["accuracy"]}
        else:
            seed_everything(args.seed)
            fp, fp_epochs = build_model("resnet20", in_channels=1, num_classes=10), args.fp_epochs
            fp_metrics = train_classifier(
                fp,
                train,
                test,
                epochs=args.fp_epochs,
                lr=args.fp_lr,
                seed=args.seed,
                preprocessing=prep,
                progress=progress,
            )
        fp_seconds = time.perf_counter() - t0
        settings = PicpqSettings(
            flops_target=args.flops_target,
            max_bits=tuple(int(b) for b in args.max_bits.split(",")),
            min_bits=args.min_bits,
            tie_break=args.tie_break,
            generations=args.generations,
            population=args.population,
            tau_hat=args.tau_hat,
            ft_epochs=args.ft_epochs,
            ft_lr=args.ft_lr,
            qat_epochs=args.qat_epochs,
            seed=args.seed,
        )
        t0 = time.perf_counter()
        data = ClassifierData(train, test, prep, shape)
        pq = picpq(fp, data, settings=settings, progress=progress)
        rows.append(_row("PIC-PQ", pq, time.perf_counter() - t0))
        export = None
        if not args.no_export:  # the export owner's pipeline; a failure is recorded, not fatal for the table
            import tempfile

            work = args.work or Path(tempfile.mkdtemp(prefix="picpq-bench-"))
            try:
                export = ort_accuracy(fp, pq, test, prep, shape, work, args.seed)
            except Exception as e:  # noqa: BLE001 - bench keeps going and reports the failure
                export = {"error": f"{type(e).__name__}: {e}"}
            console.print(f"export: {export}")
        bits = _rms_bits(pq)
        t0 = time.perf_counter()
        mag_settings = MagnitudeSettings(
            target_bops=pq.totals["bops"],
            bits=bits,
            ft_epochs=args.ft_epochs,
            qat_epochs=args.qat_epochs,
            seed=args.seed,
            ft_lr=args.ft_lr,
        )
        mag = magnitude(fp, data, settings=mag_settings, progress=progress)
        rows.append(_row(f"L1 magnitude + uniform {mag.extra['bits']}-bit", mag, time.perf_counter() - t0))
        for b in () if args.no_uniform else (8, 4):
            t0 = time.perf_counter()
            uni_settings = UniformSettings(bits=b, epochs=budget, seed=args.seed)
            uni = uniform(fp, data, settings=uni_settings, progress=progress)
            rows.append(_row(f"uniform {b}-bit QAT", uni, time.perf_counter() - t0))
    fp_acc = fp_metrics["test_accuracy"]
    rows.insert(
        0,
        {
            "method": "FP32 ResNet-20",
            "bops_g": pq.totals["bops_ref"] / 1e9,
            "bops_ratio": 1.0,
            "size_kib": pq.totals["size_bytes_ref"] / 1024,
            "size_ratio": 1.0,
            "accuracy": fp_acc,
            "drop_points": 0.0,
            "seconds": round(fp_seconds, 1),
        },
    )
    bar = {
        "picpq_bops_ratio_ge_50": pq.totals["bops_ratio"] >= 50,
        "picpq_drop_le_0_5_points": pq.totals["accuracy_drop_points"] <= 0.5,
        "picpq_at_least_magnitude_accuracy": pq.totals["accuracy_after"] >= mag.totals["accuracy_after"],
        "magnitude_bops_le_picpq": mag.totals["bops"] <= pq.totals["bops"],
    }
    out = {
        "benchmark": "picpq",
        "model": "resnet20",
        "data": "mnist (shipped t10k, train_test_split 0.2 seed %d)" % args.seed,
        "train_examples": len(train),
        "test_examples": len(test),
        "torch_threads": args.threads,
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()},
        "fp_epochs": fp_epochs,
        "fp_checkpoint": str(args.fp_checkpoint or ""),
        "rows": rows,
        "bar": bar,
        "export": export,
        "picpq_layers": pq.layers,
        "picpq_search": pq.extra["search"],
        "picpq_totals": pq.totals,
        "size_definition": pq.totals["size_definition"],
        "bops_definition": "sum MACs*w_bits*a_bits, own bits (PIC-PQ); stem conv and classifier FP32 (32x32)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))

    table = Table(title="PIC-PQ on ResNet-20 / MNIST")
    for c in (
        "method",
        "BOPs (G)",
        "BOPs ratio",
        "size (KiB)",
        "size ratio",
        "accuracy %",
        "drop (pts)",
        "time s",
    ):
        table.add_column(c)
    for r in rows:
        table.add_row(
            r["method"],
            f"{r['bops_g']:.3f}",
            f"{r['bops_ratio']:.1f}x",
            f"{r['size_kib']:.1f}",
            f"{r['size_ratio']:.1f}x",
            f"{100 * r['accuracy']:.2f}",
            f"{r['drop_points']:.2f}",
            f"{r['seconds']}",
        )
    Console(width=140).print(table)
    Console().print({k: ("PASS" if v else "FAIL") for k, v in bar.items()})
    if export and "error" not in export:
        Console().print(
            f"PIC-PQ via edgefl export (jetson-tx2, int8 Q/DQ): onnxruntime accuracy "
            f"{100 * export['accuracy_onnxruntime']:.2f} % vs torch {100 * export['accuracy_torch']:.2f} % "
            f"(top-1 agreement {100 * export['top1_agreement']:.2f} %)"
        )
    return out


if __name__ == "__main__":
    main()
