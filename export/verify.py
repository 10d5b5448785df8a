"""The parity oracle shared by `edgefl export` and the tests: reference outputs vs candidate outputs.

``compare_outputs`` is pure numpy; ``torch_outputs`` / ``onnxruntime_outputs`` are the two runners;
``gate`` turns figures + thresholds into pass/fail with the reason. Figures are computed on logits
(top-1 agreement needs them) and max abs diff on features too.
"""

from __future__ import annotations

import numpy as np

from edgefl.errors import EdgeflError
from edgefl.export.precision import THRESHOLDS


def compare_outputs(reference: dict, candidate: dict) -> dict:
    """Parity figures between two runs over the same inputs.

    Args:
        reference: {"logits": [N, C], "features": [N, F]} (features optional).
        candidate: same keys.

    Returns:
        dict with samples, max_abs_diff (logits), features_max_abs_diff, mean_cosine and min_cosine
        (per-sample cosine of logits), top1_agreement (fraction), top1_disagreements (count).
    """
    ref = np.asarray(reference["logits"], np.float64)
    cand = np.asarray(candidate["logits"], np.float64)
    if ref.shape != cand.shape:
        raise EdgeflError(
            f"parity: logits shapes differ ({ref.shape} vs {cand.shape}) — the export is broken"
        )
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = np.where(norms > 0, np.sum(ref * cand, axis=1) / np.maximum(norms, 1e-300), 1.0)
    agree = ref.argmax(axis=1) == cand.argmax(axis=1)
    figures = {
        "samples": int(ref.shape[0]),
        "max_abs_diff": float(np.max(np.abs(ref - cand))) if ref.size else 0.0,
        "mean_cosine": float(np.mean(cosine)) if ref.size else 1.0,
        "min_cosine": float(np.min(cosine)) if ref.size else 1.0,
        "top1_agreement": float(np.mean(agree)) if ref.size else 1.0,
        "top1_disagreements": int(np.sum(~agree)),
    }
    if "features" in reference and "features" in candidate:
        diff = np.abs(
            np.asarray(reference["features"], np.float64) - np.asarray(candidate["features"], np.float64)
        )
        figures["features_max_abs_diff"] = float(diff.max()) if diff.size else 0.0
    return figures


def gate(figures: dict, precision: str) -> dict:
    """Apply THRESHOLDS[precision]; returns {"passed": bool, "thresholds": ..., "failures": [str]}."""
    limits = THRESHOLDS[precision]
    failures = []
    if limits["max_abs_diff"] is not None and not figures["max_abs_diff"] <= limits["max_abs_diff"]:
        failures.append(f"max abs diff {figures['max_abs_diff']:.3g} > {limits['max_abs_diff']:g}")
    if limits["min_cosine"] is not None and not figures["mean_cosine"] >= limits["min_cosine"]:
        failures.append(f"cosine {figures['mean_cosine']:.6f} < {limits['min_cosine']}")
    if (
        limits["min_top1_agreement"] is not None
        and not figures["top1_agreement"] >= limits["min_top1_agreement"]
    ):
        failures.append(
            f"top-1 agreement {figures['top1_agreement']:.2%} < {limits['min_top1_agreement']:.0%}"
        )
    return {"passed": not failures, "thresholds": dict(limits), "failures": failures}


def torch_outputs(
    model, x: np.ndarray, batch_size: int = 256, half: bool = False, head: str | None = None
) -> dict:
    """Run a torch classifier on ``x`` (already normalised); ``half`` emulates fp16.

    Features are the head's input (``edgefl.models.head.two_headed``; ``head`` names the head module).
    """
    import torch

    from edgefl.models.head import two_headed

    logits, feats = [], []
    with torch.no_grad():
        net = model
        if half:
            import copy

            net = copy.deepcopy(model).half()
        net = two_headed(net, head).eval()
        for start in range(0, len(x), batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size]))
            xb = xb.half() if half else xb
            out, f = net(xb)
            logits.append(out.float().numpy())
            feats.append(f.float().numpy())
    return {"logits": np.concatenate(logits), "features": np.concatenate(feats)}


def torch_reference(model, head: str | None = None):
    """The parity reference for a torch model: ``reference(x, half=False) -> {"logits", "features"}``."""
    return lambda x, half=False: torch_outputs(model, x, half=half, head=head)


def onnxruntime_reference(model_path):
    """The parity reference for an ONNX file run as it is (fp32 only: there is no fp16 emulation of it)."""

    def reference(x, half=False):
        if half:
            raise EdgeflError(
                "an ONNX input has no fp16 emulation on the host — internal error, please report it"
            )
        return onnxruntime_outputs(model_path, x)

    return reference


def onnxruntime_outputs(model_path, x: np.ndarray, batch: int | None = None, optimized: bool = True) -> dict:
    """Run model.onnx on CPU with onnxruntime (one intra-op thread).

    Args:
        model_path: the ONNX file.
        x: inputs.
        batch: chunk size for a dynamic-batch model (a static batch is read from the model).
        optimized: False disables graph optimizations, so a Q/DQ graph runs as written (float
            DequantizeLinear -> op -> QuantizeLinear: the reference semantics of the int8 model)
            instead of through this host's fused int8 kernels.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    static = session.get_inputs()[0].shape[0]
    step = static if isinstance(static, int) else (batch or 256)
    names = [o.name for o in session.get_outputs()]
    chunks: dict = {name: [] for name in names}
    for start in range(0, len(x), step):
        xb = np.ascontiguousarray(x[start : start + step], np.float32)
        valid = len(xb)
        if isinstance(static, int) and valid < static:  # pad the last chunk of a static-batch model
            xb = np.concatenate([xb, np.zeros((static - valid,) + xb.shape[1:], np.float32)])
        for name, value in zip(names, session.run(names, {input_name: xb})):
            chunks[name].append(value[:valid])
    return {name: np.concatenate(values) for name, values in chunks.items()}


def run_parity(
    reference, model_path, x: np.ndarray, checks, fp16_samples: int = 128, against: str = "torch"
) -> dict:
    """The export-time oracle: the reference (torch, or the source ONNX) vs model.onnx on onnxruntime.

    Args:
        reference: ``reference(x, half=False) -> {"logits", "features"}`` (``torch_reference`` of the
            model exactly as trained, or ``onnxruntime_reference`` of a source ONNX file).
        model_path: the written model.onnx.
        x: normalised real inputs, N×C×H×W float32.
        checks: precision keys from ExportSettings.parity_checks ("fp32", "fp16", "int8").
        fp16_samples: inputs used for the fp16 emulation (torch half on CPU is slow).
        against: what the reference is, for the runner labels ("torch", "source ONNX").

    Returns:
        {check: {"runner", "gated", **figures, **gate}}. "fp32" compares onnxruntime on model.onnx.
        "int8" compares the Q/DQ graph run as written (optimizations off: the int8 model's reference
        semantics, which the device's ARM kernels implement) and adds "int8_host_kernels", the same
        file through this host's fused int8 kernels — reported, not gated (x86 AVX2 without VNNI
        saturates U8S8 products; the device is not x86). "fp16" compares torch half precision
        against torch fp32 (an emulation of the engine numerics, not TensorRT).
    """
    expected = reference(x)
    results = {}
    for check in checks:
        if check == "fp16":
            sub = x[:fp16_samples]
            ref = {k: v[:fp16_samples] for k, v in expected.items()}
            figures = compare_outputs(ref, reference(sub, half=True))
            results[check] = {
                "runner": f"torch fp16 (emulated) vs {against}",
                "gated": True,
                **figures,
                **gate(figures, check),
            }
        elif check == "int8":
            figures = compare_outputs(expected, onnxruntime_outputs(model_path, x, optimized=False))
            results[check] = {
                "runner": f"ORT Q/DQ as written vs {against}",
                "gated": True,
                **figures,
                **gate(figures, check),
            }
            host = compare_outputs(expected, onnxruntime_outputs(model_path, x))
            results["int8_host_kernels"] = {
                "runner": f"ORT int8 kernels (this host) vs {against}",
                "gated": False,
                **host,
                **gate(host, check),
            }
        else:
            figures = compare_outputs(expected, onnxruntime_outputs(model_path, x))
            results[check] = {"runner": f"ORT vs {against}", "gated": True, **figures, **gate(figures, check)}
    return results


# TensorRT "fp32" may run TF32 on Ampere+ (on by default), so its engine is gated like fp16.
TENSORRT_GATES = {"fp32": "fp16", "fp16": "fp16", "int8": "int8"}


def tensorrt_outputs(bundle_dir, manifest: dict, x: np.ndarray, precision: str) -> dict:
    """Run a bundle's freshly built engine (edgefl.runtime.trt_engine) over ``x`` in engine-sized chunks."""
    from edgefl.runtime.trt_engine import TensorRTEngine

    engine = TensorRTEngine(str(bundle_dir), manifest, build_if_missing=False, precision=precision)
    try:
        shape = manifest["inputs"][0]["shape"]
        step = shape[0] if isinstance(shape[0], int) else int(manifest["engine"]["batch"]["max"])
        chunks: dict = {}
        for start in range(0, len(x), step):
            xb = np.ascontiguousarray(x[start : start + step], np.float32)
            valid = len(xb)
            if isinstance(shape[0], int) and valid < step:
                xb = np.concatenate([xb, np.zeros((step - valid,) + xb.shape[1:], np.float32)])
            for name, value in engine.infer({manifest["inputs"][0]["name"]: xb}).items():
                chunks.setdefault(name, []).append(value[:valid])
    finally:
        engine.close()
    return {name: np.concatenate(values) for name, values in chunks.items()}


def tensorrt_parity(reference, bundle_dir, manifest: dict, x: np.ndarray, precision: str) -> dict:
    """The reference (see run_parity) vs the TensorRT engine built on this machine, per TENSORRT_GATES."""
    figures = compare_outputs(reference(x), tensorrt_outputs(bundle_dir, manifest, x, precision))
    check = TENSORRT_GATES[precision]
    return {
        "runner": f"TensorRT {precision} (this machine) vs torch",
        "gated": True,
        **figures,
        **gate(figures, check),
    }


def nonfinite_weights(state: dict) -> list:
    """Names of the floating-point tensors in a state dict that hold NaN or Inf."""
    return [name for name, t in state.items()
            if t.is_floating_point() and not bool(t.isfinite().all())]


def check_finite_weights(model, source) -> None:
    """Refuse a model with NaN/Inf weights before export (its parity would fail for no visible reason)."""
    bad = nonfinite_weights(model.state_dict())
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise EdgeflError(f"{source} holds NaN or Inf weights ({', '.join(bad[:3])}{more}) — the training "
                          "diverged or the file was altered; retrain with a lower --lr or restore it")


def raise_on_failure(parity: dict) -> None:
    """Raise EdgeflError naming every failed parity check."""
    failed = {name: r["failures"] for name, r in parity.items() if r["gated"] and not r["passed"]}
    if failed:
        detail = "; ".join(f"{name}: {', '.join(f)}" for name, f in failed.items())
        raise EdgeflError(
            f"parity check failed ({detail}) — the exported model does not match torch; no bundle was "
            "published (inspect the model's unsupported ops or try a higher precision)"
        )
