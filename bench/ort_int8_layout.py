"""Why edgefl's int8 checkpoint bundles are slower than fp32 in onnxruntime on CPU, and the route that is not.

Issue 14's study (bench/fmnist_methods.py --latency) found every int8 Q/DQ bundle made from a checkpoint
about 2x slower than the fp32 bundle in onnxruntime on this x86, although the CPU has VNNI. This bench shows
the reason and measures the alternatives on one seed's Fashion-MNIST ResNet-20 models (the work folder of
bench/fmnist_methods.py), every bundle made by the console script:

- ``float-fp32``: the float model's bundle (`edgefl export FP --precision fp32`);
- ``ROW-int8``: the compressed checkpoint's int8 bundle (`edgefl export CK --precision int8`): a
  QuantizeLinear/DequantizeLinear pair on each quantized conv's input and weight, the conv's output float.
  That is TensorRT's explicit-precision layout (TensorRT fuses it into int8 kernels); onnxruntime's CPU
  provider only runs an int8 kernel (QLinearConv) for a "DQ -> Conv -> Q" unit, so each conv runs in float
  with the Q/DQ work on top — the weights are dequantized at every run;
- ``float-ort-int8``: the float bundle's model.onnx through edgefl's ONNX-file route, `edgefl export
  fp32-bundle/model.onnx --precision int8 --samples x.npy` (onnxruntime's static Q/DQ quantization,
  calibrated on 256 of the 512 training images given; the other 256 check parity), which onnxruntime runs
  as QLinearConv. A compressed checkpoint has no such route today: `edgefl export CK --precision fp32`
  refuses a quantized checkpoint, and the ONNX-file route would quantize its int8 bundle's graph again.

For each: the op types of onnxruntime's optimised graph (what actually runs), p50 latency at batch 1 and
32 with one thread (the same loop for all), test accuracy on the 10,000 Fashion-MNIST test images and
the bundle's size on disk. Prints a table, writes bench/results/ort_int8_layout.json. Not a test: it
times things.

    python bench/ort_int8_layout.py [--seed 0] [--row picpq]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bundle_latency, next to this file

from bundle_latency import edgefl_json, vnni  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "runs" / "fmnist"
OUT = ROOT / "bench" / "results" / "ort_int8_layout.json"
BATCHES = ((1, 300), (32, 40))  # (batch, timed iterations)


def session(path: Path, optimized_to: Path | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # no "optimised model is hardware specific" warning: only read here
    if optimized_to is not None:
        options.optimized_model_filepath = str(optimized_to)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def executed_ops(path: Path) -> dict:
    """Op type -> count in onnxruntime's optimised graph of ``path`` (what the CPU provider runs)."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        session(path, optimized)
        graph = onnx.load(str(optimized)).graph
    return dict(sorted(collections.Counter(n.op_type for n in graph.node).items()))


def p50_ms(sess, images: np.ndarray, batch: int, iterations: int) -> float:
    name = sess.get_inputs()[0].name
    x = np.ascontiguousarray(images[:batch])
    for _ in range(20):
        sess.run(None, {name: x})
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def accuracy(sess, images: np.ndarray, labels: np.ndarray) -> float:
    name = sess.get_inputs()[0].name
    right = 0
    for i in range(0, len(images), 500):
        logits = sess.run(None, {name: images[i : i + 500]})[0]
        right += int((logits.argmax(1) == labels[i : i + 500]).sum())
    return 100 * right / len(images)


def export(source: Path, out: Path, precision: str, samples: Path | None = None) -> Path:
    """``edgefl export SOURCE`` for the TX2 profile, dynamic batch; a bundle already there is kept."""
    if not (out / "manifest.json").exists():
        more = ["--samples", samples] if samples else []
        edgefl_json(
            "export",
            source,
            "--profile",
            "jetson-tx2",
            "--precision",
            precision,
            "--out",
            out,
            "--dynamic-batch",
            "--batch-size",
            32,
            *more,
            "--json",
        )
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="which seed's checkpoints (bench/fmnist_methods.py)")
    ap.add_argument("--row", default="picpq", help="which compressed row (picpq, ghost, uniform8, ...)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    import onnxruntime as ort

    from edgefl.data.arrays import normalize
    from edgefl.data.idx_folder import load_fashion_mnist

    seed_dir = WORK / f"seed{args.seed}"
    float_ck, row_ck = WORK / f"fp-seed{args.seed}", seed_dir / args.row
    missing = [str(p) for p in (float_ck, row_ck) if not (p / "config.json").is_file()]
    if missing:
        raise SystemExit(
            f"no checkpoint at {', '.join(missing)} — run bench/fmnist_methods.py --seeds {args.seed} first"
        )
    train, test = load_fashion_mnist()
    samples = seed_dir / "ort-samples.npy"  # normalised as the bundles expect: the checkpoint's preprocessing
    bundles = {"float-fp32": export(float_ck, seed_dir / "fp32-bundle", "fp32")}
    prep = json.loads((bundles["float-fp32"] / "manifest.json").read_text())["preprocessing"]
    np.save(samples, normalize(train.x[:512], prep).astype(np.float32))
    bundles[f"{args.row}-int8"] = export(row_ck, seed_dir / f"{args.row}-bundle", "int8")
    bundles["float-ort-int8"] = export(
        bundles["float-fp32"] / "model.onnx", seed_dir / "fp32-ort-int8-bundle", "int8", samples
    )
    images, labels = normalize(test.x, prep).astype(np.float32), np.asarray(test.y)

    rows = {}
    for name, bundle in bundles.items():
        path = bundle / "model.onnx"
        sess = session(path)
        rows[name] = {
            "bundle": str(bundle),
            "bundle_bytes": sum(
                f.stat().st_size for f in bundle.rglob("*") if f.is_file() and f.suffix != ".npy"
            ),
            "executed_ops": executed_ops(path),
            **{f"b{b}_p50_ms": p50_ms(sess, images, b, n) for b, n in BATCHES},
            "accuracy": accuracy(sess, images, labels),
        }
    fp = rows["float-fp32"]
    print(
        f"{'bundle':<18} {'b1 ms':>6} {'b32 ms':>7} {'vs float fp32':>14} {'acc %':>6} {'KiB':>6}"
        "  int8 / float convs"
    )
    for name, r in rows.items():
        ops = r["executed_ops"]
        int8 = sum(v for k, v in ops.items() if k.startswith("QLinear") and "Conv" in k)
        floats = sum(v for k, v in ops.items() if k in ("Conv", "FusedConv"))
        print(
            f"{name:<18} {r['b1_p50_ms']:6.2f} {r['b32_p50_ms']:7.1f} "
            f"{r['b1_p50_ms'] / fp['b1_p50_ms']:6.2f}/{r['b32_p50_ms'] / fp['b32_p50_ms']:5.2f}x "
            f"{r['accuracy']:6.2f} {r['bundle_bytes'] / 1024:6.0f}  {int8} / {floats}"
        )
    args.out.write_text(
        json.dumps(
            {
                "seed": args.seed,
                "row": args.row,
                "onnxruntime": ort.__version__,
                "threads": 1,
                "cpu_vnni": vnni(),
                "load_average_1m": os.getloadavg()[0],
                "rows": rows,
            },
            indent=1,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
