"""Summarise bench/fmnist_methods.py: mean ± std over seeds per row, McNemar per claim, the README table.

Reads bench/results/fmnist/seed*/ROW.json, writes bench/results/fmnist_summary.json and prints the
Markdown table; ``--readme`` also replaces the block between the README's ``<!-- fmnist-table -->`` and
``<!-- /fmnist-table -->`` markers. A claim "A vs B" is tested by McNemar's exact test on the same
10,000 test images, per seed and pooled over seeds (``edgefl.compress.paired``); only seeds where both
rows exist count.

    python bench/fmnist_summary.py [--readme]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "fmnist"
OUT = ROOT / "bench" / "results" / "fmnist_summary.json"
LABELS = {
    "fp32": "FP32 ResNet-20",
    "picpq": "PIC-PQ (--target-bops 50)",
    "magnitude": "L1 magnitude + uniform bits, PIC-PQ's BOPs",
    "ghost": "GHOST (--target-bops 30)",
    "hq": "same hybrid bits, no distillation",
    "uniform8": "uniform 8-bit QAT",
    "uniform4": "uniform 4-bit QAT",
}
CLAIMS = [
    ("picpq", "magnitude"),
    ("ghost", "hq"),
    ("picpq", "uniform4"),
    ("ghost", "uniform4"),
    ("uniform8", "fp32"),
    ("picpq", "fp32"),
    ("ghost", "fp32"),
    ("uniform4", "fp32"),
]
BARS = {"picpq": (50, 1.0), "ghost": (30, 1.5)}  # (BOPs ratio at least, points lost at most)


def load_rows(results: Path) -> dict:
    """{row: {seed: row JSON}}."""
    rows: dict = {}
    for path in sorted(results.glob("seed*/*.json")):
        doc = json.loads(path.read_text())
        rows.setdefault(doc["row"], {})[doc["seed"]] = doc
    return rows


def mean_std(values) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def test_labels(rows: dict) -> list:
    """The test labels the rows were scored on: recorded in the rows (digits), else Fashion-MNIST's."""
    recorded = {r["labels"] for by_seed in rows.values() for r in by_seed.values() if r.get("labels")}
    if len(recorded) > 1:
        raise SystemExit("the rows were scored on different test sets — summarise one study at a time")
    if recorded:
        return [int(c) for c in recorded.pop()]
    from edgefl.data import load_split

    return load_split("fashion-mnist").test.y.tolist()


def summarise(rows: dict, labels) -> dict:
    from edgefl.compress.paired import compare

    fp = rows.get("fp32", {})
    table = {}
    for name, by_seed in rows.items():
        seeds = sorted(by_seed)
        drops = [100 * (fp[s]["accuracy"] - by_seed[s]["accuracy"]) if s in fp else None for s in seeds]
        lat = [by_seed[s].get("latency") or {} for s in seeds]
        entry = {"seeds": seeds}
        for key, values in {
            "accuracy": [100 * by_seed[s]["accuracy"] for s in seeds],
            "drop_points": drops,
            "bops_ratio": [by_seed[s]["bops_ratio"] for s in seeds],
            "size_ratio": [by_seed[s]["size_ratio"] for s in seeds],
            "latency_b1_ms": [x.get("b1_p50_ms") for x in lat],
            "latency_b32_ms": [x.get("b32_p50_ms") for x in lat],
            "bundle_kib": [x["bundle_bytes"] / 1024 if "bundle_bytes" in x else None for x in lat],
        }.items():
            entry[key] = mean_std(values)
        table[name] = entry
    claims = {}
    for a, b in CLAIMS:
        seeds = sorted(set(rows.get(a, {})) & set(rows.get(b, {})))
        if not seeds:
            continue
        runs = [
            ([int(c) for c in rows[a][s]["predictions"]], [int(c) for c in rows[b][s]["predictions"]], labels)
            for s in seeds
        ]
        claims[f"{a} vs {b}"] = {"seeds": seeds, **compare(runs)}
    bars = {}
    for name, (ratio, drop) in BARS.items():
        if name in table:
            e = table[name]
            per_seed = [
                (rows[name][s]["bops_ratio"], 100 * (fp[s]["accuracy"] - rows[name][s]["accuracy"]))
                for s in e["seeds"]
                if s in fp
            ]
            bars[name] = {
                "bops_ratio_at_least": ratio,
                "drop_at_most": drop,
                "met": e["bops_ratio"][0] >= ratio and e["drop_points"][0] <= drop,
                "met_every_seed": all(r >= ratio and d <= drop for r, d in per_seed),
                "worst_over_seeds": [min(r for r, _ in per_seed), max(d for _, d in per_seed)]
                if per_seed
                else None,
            }
    return {"rows": table, "claims": claims, "bars": bars}


def _pm(ms, digits=2):
    m, s = ms
    return "—" if m != m else f"{m:.{digits}f} ± {s:.{digits}f}"


def markdown(summary: dict) -> str:
    lines = [
        "| method | seeds | accuracy % | points lost | BOPs ratio | size ratio | ORT b1 ms | ORT b32 ms "
        "| bundle KiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label in LABELS.items():
        e = summary["rows"].get(name)
        if e is None:
            continue
        lines.append(
            f"| {label} | {len(e['seeds'])} | {_pm(e['accuracy'])} | {_pm(e['drop_points'])} | "
            f"{_pm(e['bops_ratio'], 1)}x | {_pm(e['size_ratio'], 1)}x | {_pm(e['latency_b1_ms'])} | "
            f"{_pm(e['latency_b32_ms'], 1)} | {_pm(e['bundle_kib'], 0)} |"
        )
    lines += [
        "",
        "| claim (A vs B) | seeds | A − B, points | discordant A-only / B-only | McNemar p (pooled) "
        "| significant at 0.05 |",
        "|---|---|---|---|---|---|",
    ]
    for claim, c in summary["claims"].items():
        verdict = (
            f"yes, {claim.split(' vs ')[0 if c['better'] == 'A' else 1]} better" if c["significant"] else "no"
        )
        lines.append(
            f"| {claim} | {len(c['seeds'])} | {c['accuracy_difference_points']:+.2f} | {c['b']} / {c['c']} "
            f"| {c['p']:.3g} | {verdict} |"
        )
    lines.append("")
    for name, bar in summary["bars"].items():
        e = summary["rows"][name]
        worst = bar["worst_over_seeds"]
        lines.append(
            f"- Bar, {LABELS[name]}: ≥ {bar['bops_ratio_at_least']}× BOPs at ≤ {bar['drop_at_most']} points "
            f"lost — {e['bops_ratio'][0]:.1f}× at {e['drop_points'][0]:.2f} points over {len(e['seeds'])} "
            f"seeds: **{'met' if bar['met'] else 'not met'}**"
            + (
                f"; {'every seed meets it' if bar['met_every_seed'] else 'not every seed meets it'} "
                f"(worst over seeds: {worst[0]:.1f}×, {worst[1]:.2f} points)"
                if worst
                else ""
            )
            + "."
        )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--readme", action="store_true", help="Rewrite the README's fmnist-table block.")
    args = ap.parse_args(argv)
    rows = load_rows(args.results)
    smoke = sorted({r["smoke"] for by_seed in rows.values() for r in by_seed.values() if r.get("smoke")})
    if smoke and args.readme:
        raise SystemExit(
            f"{args.results} holds --smoke rows ({smoke} training images): not the study, "
            "not for the README — run bench/fmnist_methods.py without --smoke"
        )
    summary = summarise(rows, test_labels(rows))
    text = markdown(summary)
    args.out.write_text(json.dumps({**summary, "markdown": text}, indent=1))
    print(text)
    if args.readme:
        readme = ROOT / "README.md"
        block = re.compile(r"(<!-- fmnist-table -->\n).*?(\n<!-- /fmnist-table -->)", re.S)
        readme.write_text(block.sub(lambda m: m.group(1) + text + m.group(2), readme.read_text()))


if __name__ == "__main__":
    main()
