"""Helpers shared by CLI commands: JSON output, tables, the two consoles.

The consoles print text literally: no rich markup, emoji codes or highlighting, so a path such as
`runs/[v2]/b` or `my:fire:bundle` prints as typed (styles are passed with ``style=``, never inline). They
never break a line of text themselves (a long path stays one line when captured or piped); tables are laid
out for the width they get without cutting a word (edgefl.cli.tables).
"""

import json
import sys

from rich.console import Console

from edgefl.cli.tables import FitTable

console = Console(markup=False, emoji=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, markup=False, emoji=False, highlight=False, soft_wrap=True)


def emit_json(obj) -> None:
    """Print one JSON document on stdout (numpy scalars and paths become plain JSON)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=_plain) + "\n")


def _plain(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def table(title: str, columns, rows) -> FitTable:
    """A table printed boxed, compact or as plain lines, whichever fits the console without cutting words."""
    return FitTable(title, [str(c) for c in columns], [[_cell(v) for v in r] for r in rows])


def _cell(v) -> str:
    """How a value reads in a table: yes/no, floats to 4 significant digits, a mapping as ``key value, ...``
    and a list as ``a, b`` (not Python's repr)."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_cell(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_cell(x) for x in v)
    return "" if v is None else str(v)


def key_value_table(title: str, mapping: dict) -> FitTable:
    return table(title, ["field", "value"], [(k, v) for k, v in mapping.items()])


def left_as_is(result: dict) -> dict:
    """The lines naming what a compression method left float or unpruned (empty when nothing was)."""
    shown = {}
    for key, label in (("left_float", "left in float"), ("not_pruned", "not pruned")):
        for name, why in (result.get(key) or {}).items():
            shown[f"{label}: {name}"] = why
    return shown


def compression_totals(t: dict) -> dict:
    """The size, BOPs and accuracy lines every compression command shows, from a method's totals."""
    return {
        "size": f"{t['size_bytes'] / 1024:.1f} KiB (was {t['size_bytes_ref'] / 1024:.1f} KiB, "
        f"{t['size_ratio']:.1f}x)",
        "BOPs": f"{t['bops'] / 1e9:.3f} G (was {t['bops_ref'] / 1e9:.2f} G)",
        "BOPs ratio": f"{t['bops_ratio']:.1f}x",
        "accuracy before": f"{100 * t['accuracy_before']:.2f} %",
        "accuracy after": f"{100 * t['accuracy_after']:.2f} %  (drop {t['accuracy_drop_points']:.2f} points)",
    }


def mqtt_section(broker: str, username, password, tls_ca) -> dict:
    """The runtime config's "mqtt" section from --broker URL (mqtts:// = TLS), credentials and --tls-ca."""
    from edgefl.sim.brokers import mqtt_options_from_url

    mqtt = mqtt_options_from_url(broker)
    if username is not None:
        mqtt["username"] = username
    if password is not None:
        mqtt["password"] = password
    if tls_ca is not None:
        mqtt.update(tls=True, ca_certs=str(tls_ca))
    return mqtt


TARGET_MISSED_EXIT = 3  # the command ran and wrote its checkpoint, but a --max-drop target was missed


def target_options(target_bops, target_size, max_drop) -> dict:
    """The settings fields of the --target-bops/--target-size/--max-drop options (checked by the method)."""
    return {"target_bops": target_bops, "target_size": target_size, "max_drop": max_drop}


def target_lines(result: dict) -> dict:
    """Table lines for a result's ``target`` block (nothing without a target)."""
    block = result.get("target") or {}
    if not block.get("requested"):
        return {}
    asked = ", ".join(f"{k} {v:g}" for k, v in block["requested"].items())
    tried = len(block.get("attempts") or []) or 1
    verdict = "met" if block["met"] else "MISSED"
    return {"target": f"{asked}: {verdict} ({tried} attempt{'s' if tried > 1 else ''})"}


def exit_if_target_missed(result: dict) -> None:
    """One line on stderr and exit TARGET_MISSED_EXIT when the result missed its target."""
    block = result.get("target") or {}
    if block.get("requested") and not block.get("met"):
        missed = [k for k, ok in block["checks"].items() if not ok]
        r = block["reached"]
        err_console.print(
            f"error: target missed ({', '.join(missed)}): {r['drop_points']:.2f} points lost at "
            f"{r['bops_ratio']:.1f}x BOPs after {len(block['attempts']) or 1} attempt(s); the best "
            f"attempt is in {result['checkpoint']} — allow a larger --max-drop or a smaller cost target",
            style="bold red",
        )
        raise SystemExit(TARGET_MISSED_EXIT)
