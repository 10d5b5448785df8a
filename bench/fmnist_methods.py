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
is skipped (``--redo`` to run it again; ``--retime`` times every bundle again, in one sitting). Commands
go through the installed console script; the two baselines without a command (magnitude, uniform) use the
Python API. Not a test: it times things.

    nice python bench/fmnist_methods.py --seeds 0 1 2 --latency      # train what is missing, then rows
    python bench/fmnist_summary.py --readme                         # mean ± std, McNemar -> README table

Estimated at more than 5 hours of CPU on two shared cores for three seeds. ``--smoke N`` checks the
pipeline in minutes and is NOT the study: the first N training and N/5 test images of Fashion-MNIST as
an idx folder, one float epoch, one epoch per row, a minimal PIC-PQ search; work and results under
runs/fmnist-smoke/ unless given, each row marked ``"smoke": N``:

    nice python bench/fmnist_methods.py --smoke 600 --seeds 0 --latency
    python bench/fmnist_summary.py --results runs/fmnist-smoke/results --out runs/fmnist-smoke/summary.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bundle_latency, next to this file

from bundle_latency import bundle_latency, edgefl_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "fmnist"
WORK = Path(__file__).resolve().parents[1] / "runs" / "fmnist"
SMOKE = WORK.with_name("fmnist-smoke")
ROWS = ("fp32", "picpq", "magnitude", "ghost", "hq", "uniform8", "uniform4")
PICPQ_TARGET, GHOST_TARGET = 50, 30
SMOKE_PICPQ = ["--generations", "0", "--population", "1", "--tau-hat", "0"]  # --smoke: no search to speak of


def smoke_data(work: Path, n: int) -> Path:
    """The first ``n`` training and ``n // 5`` test images of Fashion-MNIST as a folder of idx files."""
    from edgefl.data import load_fashion_mnist

    folder = work / f"fashion-mnist-{n}"
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    train, test = load_fashion_mnist()
    for part, data, k in (("train", train, n), ("t10k", test, max(1, n // 5))):
        images = (data.x[:k, 0] * 255).round().astype("uint8")
        labels = data.y[:k].astype("uint8")
        header = struct.pack(">IIII", 2051, *images.shape)
        (folder / f"{part}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        (folder / f"{part}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, k) + labels.tobytes())
    return folder


def float_checkpoint(seed: int, work: Path, smoke: int | None = None) -> Path:
    ck = work / f"fp-seed{seed}"
    data = ["--data", smoke_data(work, smoke), "--epochs", 1] if smoke else ["--data", "fashion-mnist"]
    if not (ck / "config.json").exists():
        edgefl_json("train", "--model", "resnet20", *data, "--seed", seed, "--out", ck, "--json")
    return ck


def predictions(checkpoint: Path) -> tuple[str, float, str]:
    """The checkpoint's test predictions as a string of digits, its accuracy, the labels as digits."""
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
    digits = "".join(map(str, pred.tolist())), "".join(map(str, test.y.tolist()))
    return digits[0], float((pred == test.y).mean()), digits[1]


def _cli_row(name, method, fp, out, args):
    doc = edgefl_json("compress", method, fp, "--out", out, "--json", *args)
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


def run_row(name: str, seed: int, fp: Path, work: Path, epochs: int, results: Path, smoke=None) -> dict:
    out = work / f"seed{seed}" / name
    for stale in (out, out.with_name(f"{name}-bundle")):  # --redo: this bench's output of an earlier run
        if stale.exists():
            shutil.rmtree(stale)
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
            ["--seed", seed, "--target-bops", PICPQ_TARGET, "--ft-epochs", half, "--qat-epochs", half]
            + (SMOKE_PICPQ if smoke else []),
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
        row = _api_row(name, fp, out, seed, epochs, picpq)  # the stored picpq row: its totals and layers
    pred, acc, labels = predictions(Path(row["result"]["checkpoint"]))
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
        "smoke": smoke,  # None for the study; N for a --smoke run on N training images (not the study)
        "predictions": pred,
        "labels": labels,  # the test images' labels, in the order of the predictions
    }


def latency(row: dict, work: Path) -> dict:
    """Export the row's checkpoint (fp32 for the float model, int8 Q/DQ otherwise) and time it."""
    bundle = work / f"seed{row['seed']}" / f"{row['row']}-bundle"
    return bundle_latency(Path(row["checkpoint"]), bundle, "fp32" if row["row"] == "fp32" else "int8")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    ap.add_argument("--epochs", type=int, default=2, help="Training passes of every compressed row.")
    ap.add_argument("--latency", action="store_true", help="Also export and time each row's bundle.")
    ap.add_argument("--redo", action="store_true", help="Run rows again even when their JSON exists.")
    ap.add_argument("--retime", action="store_true",
                    help="Time every row's bundle again (implies --latency; bundles are kept): all the "
                    "latencies from one sitting, on a machine left alone.")
    ap.add_argument("--work", type=Path, default=None,
                    help="Default: runs/fmnist (--smoke: runs/fmnist-smoke).")
    ap.add_argument("--results", type=Path, default=None,
                    help="Default: bench/results/fmnist (--smoke: runs/fmnist-smoke/results).")
    ap.add_argument("--smoke", type=int, default=None, metavar="N",
                    help="Pipeline check, not the study: N training images, one epoch everywhere.")
    args = ap.parse_args(argv)
    if args.smoke:
        args.epochs = 1
    args.latency = args.latency or args.retime
    args.work = args.work or (SMOKE if args.smoke else WORK)
    args.results = args.results or (SMOKE / "results" if args.smoke else RESULTS)
    for seed in args.seeds:
        fp = float_checkpoint(seed, args.work, args.smoke)
        for name in args.rows:
            path = args.results / f"seed{seed}" / f"{name}.json"
            if args.redo or not path.exists():
                row = run_row(name, seed, fp, args.work, args.epochs, args.results, args.smoke)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(row, indent=1))
                print(
                    f"seed {seed} {name}: {row['bops_ratio']:.1f}x BOPs, {100 * row['accuracy']:.2f} %",
                    file=sys.stderr,
                    flush=True,
                )
            row = json.loads(path.read_text())
            if args.latency and ("latency" not in row or args.retime):
                row["latency"] = latency(row, args.work)
                path.write_text(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
