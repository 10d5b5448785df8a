"""Why edgefl's int8 bundles are slower than fp32 in onnxruntime on CPU, and what int8 costs laid out for it.

Issue 14's study (bench/fmnist_methods.py --latency) found every int8 Q/DQ bundle 2-2.6x slower than the
fp32 bundle in onnxruntime on this x86, although the CPU has VNNI. This bench shows the reason and the
counterfactual on one seed's bundles (Fashion-MNIST ResNet-20, bench/fmnist_methods.py's work folder):

- ``bundle-int8``: edgefl's int8 bundle as exported (`--precision int8`): a QuantizeLinear/
  DequantizeLinear pair on each quantized conv's input and weight, the conv's output float. That is
  TensorRT's explicit-precision layout (TensorRT fuses it into int8 kernels); onnxruntime's CPU provider
  only runs an int8 kernel (QLinearConv) for a "DQ -> Conv -> Q" unit, so here every conv runs in float
  with the Q/DQ work on top — the weights are even dequantized at every run;
- ``ort-qdq``: the fp32 bundle's graph quantized by onnxruntime's own `quantize_static` (QDQ format,
  uint8 activations, int8 per-tensor weights, calibrated on 256 Fashion-MNIST training images), which
  onnxruntime turns into QLinearConv/QLinearAdd;
- ``bundle-fp32``: the float bundle.

For each: the op types of onnxruntime's optimised graph (what actually runs), p50 latency at batch 1
and 32 with one thread, and test accuracy on the 10,000 Fashion-MNIST test images. Prints a table,
writes bench/results/ort_int8_layout.json. Not a test: it times things.

    python bench/ort_int8_layout.py [--seed 0] [--row uniform8]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

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


def ort_qdq(fp32_onnx: Path, calibration: np.ndarray, out: Path) -> Path:
    """The float graph quantized by onnxruntime's quantize_static (QDQ, u8 activations, s8 weights)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(np.split(calibration, len(calibration) // 32))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"input": batch}

    inferred = out.with_name("inferred.onnx")
    onnx.save(onnx.shape_inference.infer_shapes(onnx.load(str(fp32_onnx))), str(inferred))
    quantize_static(
        str(inferred),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="which seed's bundles (bench/fmnist_methods.py)")
    ap.add_argument("--row", default="uniform8", help="which compressed row's int8 bundle")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    import onnxruntime as ort

    from bundle_latency import vnni
    from edgefl.data.arrays import normalize
    from edgefl.data.idx_folder import load_fashion_mnist

    bundles = {
        "bundle-fp32": WORK / f"seed{args.seed}" / "fp32-bundle",
        "bundle-int8": WORK / f"seed{args.seed}" / f"{args.row}-bundle",
    }
    missing = [str(b) for b in bundles.values() if not (b / "model.onnx").is_file()]
    if missing:
        raise SystemExit(
            f"no bundle at {', '.join(missing)} — run bench/fmnist_methods.py --seeds "
            f"{args.seed} --latency first"
        )
    manifest = json.loads((bundles["bundle-fp32"] / "manifest.json").read_text())
    train, test = load_fashion_mnist()
    prep = manifest["preprocessing"]
    calibration = normalize(train.x[:256], prep).astype(np.float32)
    images = normalize(test.x, prep).astype(np.float32)
    labels = np.asarray(test.y)

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        models = {name: b / "model.onnx" for name, b in bundles.items()}
        models["ort-qdq"] = ort_qdq(models["bundle-fp32"], calibration, Path(tmp) / "ort_qdq.onnx")
        for name, path in models.items():
            sess = session(path)
            rows[name] = {
                "model": str(path) if name != "ort-qdq" else "quantize_static(bundle-fp32)",
                "executed_ops": executed_ops(path),
                **{f"b{b}_p50_ms": p50_ms(sess, images, b, n) for b, n in BATCHES},
                "accuracy": accuracy(sess, images, labels),
            }
    fp = rows["bundle-fp32"]
    header = f"{'model':<12} {'b1 ms':>7} {'b32 ms':>7} {'vs fp32 b1/b32':>15} {'acc %':>6}"
    print(header + "  int8 kernels / float convs")
    for name, r in rows.items():
        ops = r["executed_ops"]
        int8 = sum(v for k, v in ops.items() if k.startswith("QLinear") or k == "QGemm")
        floats = sum(v for k, v in ops.items() if k in ("Conv", "FusedConv"))
        print(
            f"{name:<12} {r['b1_p50_ms']:7.2f} {r['b32_p50_ms']:7.1f} "
            f"{r['b1_p50_ms'] / fp['b1_p50_ms']:6.2f}x/{r['b32_p50_ms'] / fp['b32_p50_ms']:5.2f}x "
            f"{r['accuracy']:6.2f}  {int8} / {floats}"
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
