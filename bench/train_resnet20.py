"""Issue bar: ResNet-20 trained by `edgefl train` on the shipped MNIST split — accuracy and wall time.

Prints a table and writes bench/results/train_resnet20.json. Not a test: it times things.
"""
import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgefl.train_checkpoint import train_to_checkpoint

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "train_resnet20.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        r = train_to_checkpoint(Path(tmp) / "ck", model="resnet20", data="mnist", epochs=args.epochs,
                                lr=args.lr, seed=args.seed)
        wall = time.perf_counter() - start
    doc = {"benchmark": "train_resnet20", "command": "python bench/train_resnet20.py", "model": "resnet20",
           "epochs": args.epochs, "lr": args.lr, "seed": args.seed, "test_accuracy": r["test_accuracy"],
           "per_epoch_accuracy": [h["test_accuracy"] for h in r["history"]],
           "train_seconds": r["train_seconds"],
           "wall_seconds": round(wall, 1), "torch_threads": r["torch_threads"], "cpus": os.cpu_count(),
           "load_average_1m": os.getloadavg()[0], "machine": platform.processor() or platform.machine(),
           "bar_98_percent": r["test_accuracy"] >= 0.98}
    t = Table(title="ResNet-20 on the shipped MNIST split (8,000 train / 2,000 held out)")
    for k in ("epochs", "test_accuracy", "train_seconds", "wall_seconds", "torch_threads", "load_average_1m"):
        t.add_column(k)
    t.add_row(*[str(doc[k]) for k in ("epochs", "test_accuracy", "train_seconds", "wall_seconds",
                                      "torch_threads", "load_average_1m")])
    Console().print(t)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
