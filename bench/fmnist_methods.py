"""Issue 14: the compression methods side by side on ResNet-20 / Fashion-MNIST, three seeds.

Fashion-MNIST's official split (60,000 train / 10,000 test; Debian's dataset-fashion-mnist). Per seed S:

- the float model is `edgefl train --model resnet20 --data fashion-mnist --seed S` (5 epochs, peak lr 0.05);
- rows (each from that float checkpoint, the same training budget of ``--epochs`` passes over the 60k
  images unless noted):
  fp32       the float model itself;
  picpq      `edgefl compress picpq FP --target-bops 50` (fine-tune 1 + QAT 1 epoch; its own search);
  magnitude  L1-magnitude filter pruning + uniform bits at PIC-PQ's BOPs (same seed), 1 + 1 epoch;
  ghost      `edgefl compress ghost FP --target-bops 30` (HQ bits + OST distillation, 2 epochs);
  hq         the same hybrid bits without distillation (`--no-distill`), 2 epochs;
  uniform8, uniform4   uniform 8-/4-bit QAT, 2 epochs (stem and classifier FP32);
- every row records its figures, the checkpoint and its 10,000 test predictions (a string of digits),
  so `bench/fmnist_summary.py` can run McNemar's test on the same images;
- ``--latency``: each row's checkpoint is exported (`edgefl export --profile jetson-tx2`, fp32 for the
  float model, int8 Q/DQ for the compressed ones, dynamic batch) and timed by `edgefl bench` with one
  onnxruntime thread at batch 1 and 32; the bundle's size on disk is recorded.

Resumable: one JSON per seed and row under bench/results/fmnist/seedS/ROW.json; a row whose file exists
is skipped (``--redo`` to run it again). Commands go through the installed console script; the two
baselines without a command (magnitude, uniform) use the Python API. Not a test: it times things.

    nice python bench/fmnist_methods.py --seeds 0 1 2                # train what is missing, then rows
    nice python bench/fmnist_methods.py --seeds 0 --rows picpq ghost --latency
    python bench/fmnist_summary.py                                  # mean ± std, McNemar -> README table
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "fmnist"
WORK = Path(__file__).resolve().parents[1] / "runs" / "fmnist"
EDGEFL = str(Path(sys.executable).with_name("edgefl"))
ROWS = ("fp32", "picpq", "magnitude", "ghost", "hq", "uniform8", "uniform4")
PICPQ_TARGET, GHOST_TARGET = 50, 30


def edgefl(*argv, json_out=True) -> dict | None:
    """Run the console script; its JSON (stdout) or None. Progress stays on stderr (shown)."""
    cmd = [EDGEFL, *map(str, argv)]
    print("$", " ".join(["edgefl", *map(str, argv)]), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"edgefl {argv[0]} failed with exit {done.returncode}")
    return json.loads(done.stdout) if json_out else None


def float_checkpoint(seed: int, work: Path) -> Path:
    ck = work / f"fp-seed{seed}"
    if not (ck / "config.json").exists():
        edgefl(
            "train", "--model", "resnet20", "--data", "fashion-mnist", "--seed", seed, "--out", ck, "--json"
        )
    return ck


def predictions(checkpoint: Path) -> tuple[str, float]:
    """The checkpoint's test predictions as a string of digits, and its accuracy."""
    import numpy as np
    import torch

    from edgefl.checkpoint import load_checkpoint
    from edgefl.data import load_split, split_arguments
    from edgefl.data.arrays import normalize

    ckpt = load_checkpoint(checkpoint)
    test = load_split(ckpt.config["data"], *split_arguments(ckpt.config)).test
    x = normalize(test.x, ckpt.config.get("preprocessing"))
    model = ckpt.model.eval()
    with torch.no_grad():
        pred = np.concatenate(
            [model(torch.from_numpy(x[i : i + 500])).argmax(1).numpy() for i in range(0, len(x), 500)]
        )
    return "".join(map(str, pred.tolist())), float((pred == test.y).mean())


def _cli_row(name, method, fp, out, args):
    doc = edgefl("compress", method, fp, "--out", out, "--json", *args)
    return {"command": " ".join(["edgefl", "compress", method, "FP", *map(str, args)]), "result": doc}


def _api_row(name, fp, out, seed, epochs, picpq_row=None):
    from edgefl.baselines import MagnitudeSettings, UniformSettings
    from edgefl.methods import compress
    from edgefl.methods.checkpoints import load_float_checkpoint, save_compressed

    ckpt, data = load_float_checkpoint(fp)
    if name == "magnitude":
        t = picpq_row["totals"]
        rows = [r for r in picpq_row["layers"] if r["w_bits"] < 32]
        bits = max(2, round(math.sqrt(sum(r["bops"] for r in rows) / sum(r["macs"] for r in rows))))
        half = max(1, epochs // 2)
        settings = MagnitudeSettings(
            target_bops=t["bops"], bits=bits, ft_epochs=half, qat_epochs=half, seed=seed
        )
        what = f"L1 magnitude + uniform {bits}-bit at PIC-PQ's BOPs ({t['bops']:.4g})"
    else:
        settings = UniformSettings(bits=int(name[len("uniform") :]), epochs=epochs, seed=seed)
        what = f"uniform {settings.bits}-bit QAT, {epochs} epochs"
    result = compress(settings.__class__.__name__.replace("Settings", "").lower(), ckpt.model, data, settings)
    path = save_compressed(out, result, ckpt.config)
    return {"command": f"edgefl.methods ({what})", "result": {"checkpoint": path, **result.to_dict()}}


def run_row(name: str, seed: int, fp: Path, work: Path, epochs: int, results: Path) -> dict:
    out = work / f"seed{seed}" / name
    half = str(max(1, epochs // 2))
    started = time.perf_counter()
    if name == "fp32":
        from edgefl.checkpoint import load_checkpoint

        metrics = load_checkpoint(fp).config.get("metrics", {})
        row = {
            "command": f"edgefl train --model resnet20 --data fashion-mnist --seed {seed}",
            "result": {
                "checkpoint": str(fp),
                "bops_ratio": 1.0,
                "size_ratio": 1.0,
                "train_seconds": metrics.get("train_seconds"),
            },
        }
    elif name == "picpq":
        row = _cli_row(
            name,
            "picpq",
            fp,
            out,
            ["--seed", seed, "--target-bops", PICPQ_TARGET, "--ft-epochs", half, "--qat-epochs", half],
        )
    elif name in ("ghost", "hq"):
        extra = ["--no-distill"] if name == "hq" else []
        row = _cli_row(
            name,
            "ghost",
            fp,
            out,
            ["--seed", seed, "--target-bops", GHOST_TARGET, "--epochs", epochs, *extra],
        )
    else:
        picpq = (
            json.loads((results / f"seed{seed}" / "picpq.json").read_text()) if name == "magnitude" else None
        )
        row = _api_row(name, fp, out, seed, epochs, picpq and picpq["result"])
    pred, acc = predictions(Path(row["result"]["checkpoint"]))
    res = row["result"]
    return {
        "row": name,
        "seed": seed,
        "command": row["command"],
        "seconds": round(time.perf_counter() - started, 1),
        "bops_ratio": res.get("bops_ratio", res.get("totals", {}).get("bops_ratio")),
        "size_ratio": res.get("size_ratio", res.get("totals", {}).get("size_ratio")),
        "accuracy": acc,
        "accuracy_reported": res.get("accuracy_after", acc),
        "target": res.get("target"),
        "totals": res.get("totals"),
        "layers": res.get("layers"),
        "checkpoint": res["checkpoint"],
        "epochs": epochs if name != "fp32" else 0,
        "load_average_1m": os.getloadavg()[0],
        "predictions": pred,
    }


def latency(row: dict, work: Path) -> dict:
    """Export the row's checkpoint (fp32 for the float model, int8 Q/DQ otherwise) and time it."""
    bundle = work / f"seed{row['seed']}" / f"{row['row']}-bundle"
    precision = "fp32" if row["row"] == "fp32" else "int8"
    if not (bundle / "manifest.json").exists():
        edgefl(
            "export",
            row["checkpoint"],
            "--profile",
            "jetson-tx2",
            "--precision",
            precision,
            "--out",
            bundle,
            "--dynamic-batch",
            "--batch",
            "32",
            "--json",
        )
    timing = {}
    for batch, iterations in ((1, 300), (32, 40)):
        r = edgefl(
            "bench",
            bundle,
            "--backend",
            "onnxruntime",
            "--batch",
            batch,
            "--threads",
            "1",
            "--iterations",
            iterations,
            "--warmup",
            20,
            "--json",
        )
        timing[f"b{batch}_p50_ms"] = r["p50_ms"]
        timing[f"b{batch}_mean_ms"] = r["mean_ms"]
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    onnx_size = sum(f.stat().st_size for f in bundle.glob("*.onnx"))
    return {
        "bundle": str(bundle),
        "precision": precision,
        "bundle_bytes": size,
        "onnx_bytes": onnx_size,
        "threads": 1,
        "load_average_1m": os.getloadavg()[0],
        **timing,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    ap.add_argument("--epochs", type=int, default=2, help="Training passes of every compressed row.")
    ap.add_argument("--latency", action="store_true", help="Also export and time each row's bundle.")
    ap.add_argument("--redo", action="store_true", help="Run rows again even when their JSON exists.")
    ap.add_argument("--work", type=Path, default=WORK)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    for seed in args.seeds:
        fp = float_checkpoint(seed, args.work)
        for name in args.rows:
            path = args.results / f"seed{seed}" / f"{name}.json"
            if args.redo or not path.exists():
                row = run_row(name, seed, fp, args.work, args.epochs, args.results)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(row, indent=1))
                print(
                    f"seed {seed} {name}: {row['bops_ratio']:.1f}x BOPs, {100 * row['accuracy']:.2f} %",
                    file=sys.stderr,
                    flush=True,
                )
            row = json.loads(path.read_text())
            if args.latency and "latency" not in row:
                row["latency"] = latency(row, args.work)
                path.write_text(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
