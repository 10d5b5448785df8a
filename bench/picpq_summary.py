"""Mean of the PIC-PQ bench over the seeds that were run (bench/results/picpq.json = seed 0,
picpq_seed<N>.json = seed N). Prints a table and writes bench/results/picpq_summary.json.

    python bench/picpq_summary.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def load_runs(results: Path = RESULTS) -> list[dict]:
    """Every per-seed PIC-PQ result in ``results``, ordered by seed."""
    paths = [results / "picpq.json", *sorted(results.glob("picpq_seed*.json"))]
    runs = [json.loads(p.read_text()) for p in paths if p.exists()]
    return sorted(runs, key=lambda r: r["settings"]["seed"])


def method_key(name: str) -> str:
    """Rows are matched across seeds by method family (the magnitude row names its bit width)."""
    return "L1 magnitude + uniform, same BOPs" if name.startswith("L1 magnitude") else name


def summarise(runs: list[dict]) -> dict:
    """Per method: means of accuracy, drop, BOPs and size ratios, and the worst drop; the bar per seed
    and on the mean."""
    by_method: dict[str, list[dict]] = {}
    for run in runs:
        for row in run["rows"]:
            by_method.setdefault(method_key(row["method"]), []).append(row)
    table = []
    for name, rows in by_method.items():
        table.append(
            {
                "method": name,
                "seeds": len(rows),
                "bops_ratio_mean": statistics.mean(r["bops_ratio"] for r in rows),
                "size_ratio_mean": statistics.mean(r["size_ratio"] for r in rows),
                "accuracy_mean": statistics.mean(r["accuracy"] for r in rows),
                "drop_points_mean": statistics.mean(r["drop_points"] for r in rows),
                "drop_points_max": max(r["drop_points"] for r in rows),
            }
        )
    picpq = next(t for t in table if t["method"] == "PIC-PQ")
    mag = next(t for t in table if t["method"].startswith("L1 magnitude"))
    per_seed = {str(r["settings"]["seed"]): r["bar"] for r in runs}
    return {
        "benchmark": "picpq_summary",
        "seeds": [r["settings"]["seed"] for r in runs],
        "settings": runs[0]["settings"] if runs else {},
        "rows": table,
        "bar_per_seed": per_seed,
        "bar_on_mean": {
            "picpq_bops_ratio_ge_50": picpq["bops_ratio_mean"] >= 50,
            "picpq_drop_le_0_5_points": picpq["drop_points_mean"] <= 0.5,
            "picpq_at_least_magnitude_accuracy": picpq["accuracy_mean"] >= mag["accuracy_mean"],
        },
    }


def main() -> dict:
    from rich.console import Console
    from rich.table import Table

    runs = load_runs()
    if not runs:
        raise SystemExit("no PIC-PQ results yet — run `python bench/picpq.py` first")
    out = summarise(runs)
    (RESULTS / "picpq_summary.json").write_text(json.dumps(out, indent=2))
    t = Table(title=f"PIC-PQ on ResNet-20 / MNIST, mean over seeds {out['seeds']}")
    for c in ("method", "seeds", "BOPs ratio", "size ratio", "accuracy %", "drop (pts)", "worst drop"):
        t.add_column(c)
    for r in out["rows"]:
        t.add_row(
            r["method"],
            str(r["seeds"]),
            f"{r['bops_ratio_mean']:.1f}x",
            f"{r['size_ratio_mean']:.1f}x",
            f"{100 * r['accuracy_mean']:.2f}",
            f"{r['drop_points_mean']:.2f}",
            f"{r['drop_points_max']:.2f}",
        )
    Console(width=140).print(t)
    Console().print({"per seed": out["bar_per_seed"], "on the mean": out["bar_on_mean"]})
    return out


if __name__ == "__main__":
    main()
