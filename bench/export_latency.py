"""ResNet-20 (MNIST shape) latency: onnxruntime on the exported ONNX vs torch eager, same run.

Both runners use ONE intra-op thread (torch.set_num_threads(1); ORT intra_op_num_threads=1,
inter_op 1), the same inputs, warm-up first, and alternate in rounds so a load spike on this shared
machine hits both. The ONNX comes from edgefl's exporter (opset 13, the jetson-tx2 profile, dynamic
batch). Numbers are for THIS machine's CPU, not a Jetson.

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set on some machines here) only affect OpenBLAS-backed numpy;
neither torch (oneDNN/MKL on x86) nor onnxruntime (MLAS) use OpenBLAS for these ops. Their values
are recorded in the JSON.

    python bench/export_latency.py [--iterations-b1 300] [--iterations-b32 40]
Writes bench/results/export_latency.json.
"""

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "export_latency.json"
THREADS = 1


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _time_calls(fn, n):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def run(iterations_b1=300, iterations_b32=40, rounds=4, seed=0):
    import onnx
    import onnxruntime as ort
    import torch

    from edgefl.export.bench import latency_summary
    from edgefl.export.torch_export import onnx_from_module
    from edgefl.models import build_model

    torch.set_num_threads(THREADS)
    torch.manual_seed(seed)
    model = build_model("resnet20", in_channels=1, num_classes=10).eval()
    proto = onnx_from_module(model, (1, 28, 28), opset=13, batch=1, dynamic_batch=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet20.onnx"
        onnx.save(proto, str(path))
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(seed)
    results = {}
    for batch, iterations in ((1, iterations_b1), (32, iterations_b32)):
        x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
        xt = torch.from_numpy(x)

        def eager(xt=xt):
            with torch.inference_mode():
                model(xt)

        def onnxruntime(x=x):
            session.run(["logits"], {"input": x})

        for fn in (eager, onnxruntime):  # warm-up (allocators, oneDNN/MLAS kernel selection)
            _time_calls(fn, max(3, iterations // 10))
        per_round = max(1, iterations // rounds)
        times = {"torch_eager": [], "onnxruntime": []}
        for _ in range(rounds):  # alternate so both see the same machine load
            times["torch_eager"] += _time_calls(eager, per_round)
            times["onnxruntime"] += _time_calls(onnxruntime, per_round)
        summary = {name: latency_summary(t, batch) for name, t in times.items()}
        summary["speedup_p50"] = summary["torch_eager"]["p50_ms"] / summary["onnxruntime"]["p50_ms"]
        summary["speedup_mean"] = summary["torch_eager"]["mean_ms"] / summary["onnxruntime"]["mean_ms"]
        results[f"batch_{batch}"] = summary

    with torch.inference_mode():  # the two runners compute the same thing
        x = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
        diff = float(
            np.abs(session.run(["logits"], {"input": x})[0] - model(torch.from_numpy(x)).numpy()).max()
        )
    return {
        "model": "resnet20 (in_channels=1, 28x28, random init)",
        "onnx": {"opset": 13, "exporter": "torch.onnx TorchScript (dynamo=False) + edgefl clean-up"},
        "threads": {
            "torch": torch.get_num_threads(),
            "onnxruntime_intra_op": THREADS,
            "onnxruntime_inter_op": 1,
        },
        "max_abs_diff_logits": diff,
        "results": results,
        "machine": {
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
            "load_avg_1m_at_end": os.getloadavg()[0],
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
            "env": {
                k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
            },
        },
        "note": "shared 2-core machine; figures are indicative, the ratio matters more than absolute ms",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations-b1", type=int, default=300)
    parser.add_argument("--iterations-b32", type=int, default=40)
    args = parser.parse_args()
    report = run(args.iterations_b1, args.iterations_b32)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ResNet-20 latency, {report['machine']['cpu']}, 1 thread")
    for column in ("batch", "runner", "p50 ms", "p95 ms", "mean ms", "samples/s", "speed-up (p50)"):
        table.add_column(column)
    for key, summary in report["results"].items():
        for runner in ("torch_eager", "onnxruntime"):
            s = summary[runner]
            speedup = f"{summary['speedup_p50']:.2f}×" if runner == "onnxruntime" else ""
            table.add_row(
                str(s["batch"]),
                runner,
                f"{s['p50_ms']:.3f}",
                f"{s['p95_ms']:.3f}",
                f"{s['mean_ms']:.3f}",
                f"{s['throughput_per_s']:.0f}",
                speedup,
            )
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    Console().print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
