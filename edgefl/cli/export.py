"""`edgefl export`: checkpoint -> verified ONNX bundle (and TensorRT engine or on-device build plan)."""

from pathlib import Path

import typer

from edgefl.cli.common import console, emit_json, err_console, table
from edgefl.errors import EdgeflError
from edgefl.progress import progress_for


def parse_input_shape(text):
    """'1,28,28' -> (1, 28, 28); None stays None."""
    if text is None:
        return None
    try:
        dims = tuple(int(d) for d in text.split(","))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise EdgeflError(f"--input-shape {text!r} must be C,H,W with positive integers (e.g. 1,28,28)")
    return dims


def parity_rows(parity: dict) -> list:
    rows = []
    for check, r in parity.items():
        t = r["thresholds"]
        gates = ", ".join(
            g
            for g in (
                f"abs ≤ {t['max_abs_diff']:g}" if t["max_abs_diff"] is not None else "",
                f"cos ≥ {t['min_cosine']}" if t["min_cosine"] is not None else "",
                f"top-1 ≥ {t['min_top1_agreement']:.1%}" if t["min_top1_agreement"] is not None else "",
            )
            if g
        )
        rows.append(
            [
                check,
                r["runner"],
                r["samples"],
                f"{r['max_abs_diff']:.3g}",
                f"{r['mean_cosine']:.6f}",
                f"{r['top1_agreement']:.2%}",
                gates,
                ("PASS" if r["passed"] else "FAIL") if r["gated"] else "info",
            ]
        )
    return rows


def export_by_method(method, checkpoint: Path, profile: str, precision: str, fmt: str, out: Path, as_json):
    """A checkpoint whose method has its own exporter (STAD's anomaly-map student): its bundle, its parity."""
    manifest = method.export(checkpoint, out, profile, precision, fmt)
    if as_json:
        emit_json({"bundle": str(out), "manifest": manifest})
        return
    parity = manifest.get("parity", {})
    title = f"{manifest['model']} for {profile} (opset {manifest.get('opset')})"
    console.print(table(title, ["check", "value"],
                        [[k, v] for k, v in parity.items() if not isinstance(v, (dict, list))]))
    console.print(f"bundle written to {out} ({len(manifest['files'])} files, sha256 in manifest.json)")


def command(
    checkpoint: Path = typer.Argument(
        ..., help="Checkpoint directory (model.safetensors + config.json), or an ONNX file (*.onnx)."
    ),
    profile: str = typer.Option(
        ..., "--profile", help="Device profile (edgefl profiles list), e.g. jetson-tx2."
    ),
    precision: str = typer.Option("fp32", "--precision", help="fp32 | fp16 | int8."),
    fmt: str = typer.Option("onnx", "--format", help="onnx | tensorrt."),
    out: Path = typer.Option(..., "--out", help="Bundle directory to write."),
    batch: int = typer.Option(1, "--batch", help="Batch size (the max/opt batch with --dynamic-batch)."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Symbolic batch dimension."),
    input_shape: str = typer.Option(None, "--input-shape", help="C,H,W when the checkpoint does not say."),
    samples: Path = typer.Option(None, "--samples", help=".npy N×C×H×W inputs for parity/calibration."),
    parity_samples: int = typer.Option(
        2000, "--parity-samples", help="How many held-out inputs parity uses."
    ),
    head: str = typer.Option(None, "--head", help="Name of the model's final nn.Linear (default: the last)."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
):
    """Export a checkpoint or an ONNX file for a device profile: verify it (checker, parity), bundle it."""
    from edgefl.export.onnx_in import export_onnx, is_onnx_input
    from edgefl.export.pipeline import ExportRequest, export_checkpoint
    from edgefl.methods import exporting_method

    method = exporting_method(checkpoint)  # a method with its own exporter; None: the classifier exporter
    if method is not None:
        return export_by_method(method, checkpoint, profile, precision, fmt, out, as_json)

    request = ExportRequest(
        checkpoint=checkpoint,
        profile=profile,
        precision=precision,
        format=fmt,
        out=out,
        batch=batch,
        dynamic_batch=dynamic_batch,
        input_shape=parse_input_shape(input_shape),
        samples=samples,
        parity_samples=parity_samples,
        head=head,
    )
    export = export_onnx if is_onnx_input(checkpoint) else export_checkpoint
    with progress_for(not as_json) as progress:
        result = export(request, progress=progress)
    manifest = result.manifest
    if as_json:
        emit_json({"bundle": str(result.bundle_dir), "manifest": manifest})
        return
    settings = result.settings
    console.print(
        table(
            f"parity — {manifest['model']} for {settings.profile} "
            f"(opset {manifest['opset']}, {settings.precision})",
            ["check", "runner", "samples", "max |Δ|", "cosine", "top-1 agree", "gate", "result"],
            parity_rows({**manifest["parity"], **manifest["parity_info"]}),
        )
    )
    engine = manifest.get("engine")
    if engine and engine.get("engine_file"):
        console.print(
            f"TensorRT engine {engine['engine_file']} built and checked here "
            f"(TensorRT {engine['tensorrt_version']})."
        )
    if engine and engine.get("build_on_device"):
        err_console.print(
            f"[yellow]the device builds its own engine[/] ({engine['reason']}); "
            f"the bundle is prepared for the on-device build "
            f"({engine['precision']}, TensorRT {engine['expected_tensorrt']}): run "
            f"`python -m edgefl.runtime build-engine {result.bundle_dir}` on the device, "
            "or let the agent build it at first start.",
            highlight=False,
        )
    console.print(
        f"bundle written to {result.bundle_dir} ({len(manifest['files'])} files, sha256 in manifest.json)"
    )
