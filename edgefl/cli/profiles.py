"""`edgefl profiles list|show`: the device targets edgefl knows."""

import typer

from edgefl.cli.common import console, emit_json, key_value_table, table

app = typer.Typer(help="Device profiles: JetPack, Python, TensorRT, max ONNX opset, precision support.",
                  no_args_is_help=True)


@app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """List every shipped device profile."""
    from edgefl.export.profiles import list_profiles

    profiles = list_profiles()
    if as_json:
        emit_json([p.to_dict() for p in profiles])
        return
    cols = {"name": "name", "jetpack": "JetPack", "python": "Python", "tensorrt": "TensorRT",
            "max_opset": "opset", "fast_fp16": "FP16", "fast_int8": "INT8", "dla_cores": "DLA",
            "default_precision": "default"}
    rows = [[getattr(p, c) for c in cols] for p in profiles]
    console.print(table("device profiles", list(cols.values()), rows))


@app.command("show")
def show_cmd(name: str = typer.Argument(..., help="Profile name (e.g. jetson-tx2) or a .toml path."),
             as_json: bool = typer.Option(False, "--json", help="Print as JSON.")):
    """Show every fact of one profile."""
    from edgefl.export.profiles import load_profile

    profile = load_profile(name)
    if as_json:
        emit_json(profile.to_dict())
        return
    console.print(key_value_table(f"profile {profile.name}", profile.to_dict()))
