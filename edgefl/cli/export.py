"""`edgefl export`: checkpoint -> verified ONNX bundle (and TensorRT engine or on-device build plan)."""

from pathlib import Path

import typer

from edgefl.cli import options, validate
from edgefl.cli.common import console, emit_json, err_console, table
from edgefl.cli.staging import relocate, staged
from edgefl.export.precision import FORMATS, PRECISIONS
from edgefl.progress import progress_for


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


def print_by_method(manifest: dict, profile: str, out: Path) -> None:
    """A bundle from a method's own exporter (STAD's anomaly-map student): its parity."""
    parity = manifest.get("parity", {})
    title = f"{manifest['model']} for {profile} (opset {manifest.get('opset')})"
    console.print(table(title, ["check", "value"],
                        [[k, v] for k, v in parity.items() if not isinstance(v, (dict, list))]))
    console.print(f"bundle written to {out} ({len(manifest['files'])} files, sha256 in manifest.json)")


def command(
    checkpoint: Path = typer.Argument(
        ..., parser=options.parser_of(validate.export_input), metavar="CHECKPOINT",
        help="Checkpoint directory (model.safetensors + config.json), or an ONNX file (*.onnx)."),
    profile: str = options.profile(),
    precision: str = options.choice("fp32", PRECISIONS, "precision", "--precision",
                                    help="Precision of the exported model."),
    fmt: str = options.choice("onnx", FORMATS, "format", "--format",
                              help="onnx, or tensorrt (an engine built here or on the device)."),
    out: Path = options.out(Path("runs/bundle"), "Bundle directory to write."),
    force: bool = options.force(),
    batch_size: int = options.integer(1, "--batch-size", low=1,
                                      help="Batch size (the max/opt batch with --dynamic-batch)."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Symbolic batch dimension."),
    input_shape: str = typer.Option(None, "--input-shape", parser=options.parser_of(validate.int_list, 3),
                                    metavar="C,H,W", help="C,H,W when the checkpoint does not say."),
    samples: Path = options.existing(None, "file", "--samples",
                                     help=".npy N×C×H×W inputs for parity/calibration."),
    parity_samples: int = options.integer(2000, "--parity-samples", low=1,
                                          help="How many held-out inputs parity uses."),
    head: str = typer.Option(None, "--head", help="Name of the model's final nn.Linear (default: the last)."),
    mean: str = typer.Option(None, "--mean", parser=options.parser_of(validate.float_list), metavar="M,..",
                             help="ONNX input: the per-channel mean its inputs are normalised with, on "
                             "images in [0, 1] (with --std); the device then feeds (x/255 - mean)/std."),
    std: str = typer.Option(None, "--std", parser=options.parser_of(validate.float_list, True),
                            metavar="S,..", help="ONNX input: the per-channel std (with --mean)."),
    as_json: bool = options.as_json("the bundle path and manifest"),
    quiet: bool = options.quiet(),
):
    """Export a checkpoint or an ONNX file for a device profile: verify it (checker, parity), bundle it."""
    from edgefl.export.onnx_in import export_onnx, is_onnx_input
    from edgefl.export.pipeline import ExportRequest, export_checkpoint
    from edgefl.methods import exporting_method

    method = exporting_method(checkpoint)  # a method with its own exporter; None: the classifier exporter
    with staged(out, force) as stage:
        if method is not None:
            manifest = method.export(checkpoint, stage, profile, precision, fmt)
            result = None
        else:
            request = ExportRequest(
                checkpoint=checkpoint,
                profile=profile,
                precision=precision,
                format=fmt,
                out=stage,
                batch=batch_size,
                dynamic_batch=dynamic_batch,
                input_shape=input_shape,
                samples=samples,
                parity_samples=parity_samples,
                head=head,
                mean=mean,
                std=std,
            )
            export = export_onnx if is_onnx_input(checkpoint) else export_checkpoint
            with progress_for(not quiet) as progress:
                result = export(request, progress=progress)
            manifest = result.manifest
    if as_json:
        emit_json({"bundle": str(out), "manifest": relocate(manifest, stage, out)})
        return
    if result is None:
        return print_by_method(manifest, profile, out)
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
            f"the device builds its own engine ({engine['reason']}); "
            f"the bundle is prepared for the on-device build "
            f"({engine['precision']}, TensorRT {engine['expected_tensorrt']}): run "
            f"`python -m edgefl.runtime build-engine {out}` on the device, "
            "or let the agent build it at first start.",
            style="yellow",
        )
    console.print(
        f"bundle written to {out} ({len(manifest['files'])} files, sha256 in manifest.json)"
    )
