"""Report figures: each function takes plain data and returns PNG bytes (matplotlib, Agg backend)."""

from __future__ import annotations

import io

MODE_COLOURS = {"sync": "#d62728", "async": "#1f77b4"}
FIGSIZE = (5.0, 3.0)  # inches at 96 dpi: 480 px, what half of the page (49 % of 980 px) shows at 1:1
FONT = 9  # tick labels, legends and annotations (axis labels at matplotlib's 10)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def png_from_figure(fig) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")  # legends below the axes included
    plt.close(fig)
    return buf.getvalue()


def accuracy_curves(
    runs: dict, x_key: str, x_label: str, x_scale: float = 1.0, target: float | None = None
) -> bytes:
    """Accuracy of the global model per mode against one x quantity of the history rows."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for mode, run in runs.items():
        rows = [r for r in run.get("history", []) if r.get("accuracy") is not None]
        if not rows:
            continue
        xs = [r[x_key] / x_scale for r in rows]
        ys = [100.0 * r["accuracy"] for r in rows]
        ax.plot(
            xs,
            ys,
            marker="o",
            ms=3,
            lw=1.5,
            label=run.get("label", mode),
            color=MODE_COLOURS.get(mode),
            drawstyle="steps-post" if x_key != "version" else "default",
        )
    if target is not None:
        ax.axhline(100.0 * target, ls="--", lw=1, color="grey", label=f"target {100 * target:.1f} %")
    ax.set_xlabel(x_label)
    ax.set_ylabel("test accuracy (%)")
    ax.tick_params(labelsize=FONT)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.2), fontsize=FONT, frameon=False)  # below the axes
    return png_from_figure(fig)


def contact_timeline(
    windows: dict[str, list[tuple[float, float]]], events: list[dict], hours: bool = True
) -> bytes:
    """One row per satellite: contact windows as bars, model downloads/uploads as ticks."""
    plt = _pyplot()
    sats = sorted(windows)
    scale = 3600.0 if hours else 1.0
    fig, ax = plt.subplots(figsize=(2 * FIGSIZE[0], 0.42 * len(sats) + 1.3))
    for i, sat in enumerate(sats):
        spans = [(a / scale, (b - a) / scale) for a, b in windows[sat]]
        ax.broken_barh(spans, (i - 0.35, 0.7), color="#9ecae1", edgecolor="#3182bd", lw=0.5)
    marks = {"download": ("v", "#2ca02c"), "upload": ("^", "#ff7f0e")}
    index = {s: i for i, s in enumerate(sats)}
    for kind, (marker, colour) in marks.items():
        pts = [
            (e["sim_time_s"] / scale, index[e["satellite"]])
            for e in events
            if e.get("kind") == kind and e.get("satellite") in index
        ]
        if pts:
            xs, ys = zip(*pts)
            ax.scatter(xs, ys, marker=marker, s=18, color=colour, label=f"model {kind}", zorder=3)
    ax.set_yticks(range(len(sats)))
    ax.set_yticklabels(sats, fontsize=FONT)
    ax.tick_params(axis="x", labelsize=FONT)
    ax.set_xlabel("simulated time (h)" if hours else "simulated time (s)")
    ax.set_ylim(-0.6, len(sats) - 0.4)
    ax.grid(axis="x", alpha=0.3)
    if events:
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=FONT, ncol=2, frameon=False)  # above
    return png_from_figure(fig)


def layer_chart(names: list[str], bits: list[float], bops: list[float]) -> bytes:
    """One row per layer, its name on the y axis: weight bits (left) and BOPs on a log scale (right)."""
    plt = _pyplot()
    n = len(names)
    fig, (left, right) = plt.subplots(
        1, 2, sharey=True, figsize=(2 * FIGSIZE[0], max(2.4, 0.26 * n + 1.1)),
        gridspec_kw={"width_ratios": [2, 3]})
    rows = list(range(n))
    left.barh(rows, bits, color="#6baed6")
    for y, b in zip(rows, bits):
        left.text(b, y, f" {b:g}", va="center", fontsize=FONT)
    left.set_xlim(0, max([*bits, 8]) * 1.15)
    left.set_xlabel("weight bits")
    left.set_yticks(rows)
    left.set_yticklabels(names, fontsize=FONT)
    left.invert_yaxis()  # the first layer on top, in definition order
    right.barh(rows, [max(1, v) for v in bops], color="#fd8d3c")
    right.set_xscale("log")
    right.set_xlabel("BOPs (MACs × weight bits × activation bits, log scale)")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=FONT)
    return png_from_figure(fig)


def latency_histogram(samples_ms: list[float], label: str) -> bytes:
    """Latency distribution with p50 and p95 marked."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(FIGSIZE[0], 2.8))
    arr = np.asarray(samples_ms, dtype=float)
    ax.hist(arr, bins=min(40, max(5, arr.size // 5)), color="#9e9ac8")
    for q, ls in ((50, "-"), (95, "--")):
        v = float(np.percentile(arr, q))
        ax.axvline(v, color="k", ls=ls, lw=1, label=f"p{q} {v:.3f} ms")
    ax.set_xlabel(f"latency (ms) — {label}")
    ax.set_ylabel("runs")
    ax.tick_params(labelsize=FONT)
    ax.legend(fontsize=FONT)
    return png_from_figure(fig)
