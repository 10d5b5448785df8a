"""One self-contained HTML page: sections built from a RunData, plots embedded as PNG data URIs."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable

from edgefl.report import plots
from edgefl.report.load import RunData
from edgefl.sim.summary import percent, start_note

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:980px;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em} td,th{border:1px solid #ddd;padding:.25em .6em}
th{background:#f5f5f5;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{display:inline-block;vertical-align:top;width:49%;margin:.6em 0} figure.wide{width:100%}
figure img{max-width:100%;border:1px solid #eee} figcaption{font-size:.85em;color:#555}
.note{color:#777;font-size:.9em} .ok{color:#2a7} .bad{color:#c33} .lead{max-width:46em}
"""


def esc(x) -> str:
    return html.escape(str(x))


def fmt(x) -> str:
    if isinstance(x, bool) or x is None:
        return esc(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return esc(x)
        return f"{x:.4g}" if abs(x) < 1e4 else f"{x:,.0f}"
    return esc(x)


def table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{fmt(v)}</td>'
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            else f"<td>{fmt(v)}</td>"
            for v in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def figure(png: bytes, caption: str, key: str, wide: bool = False) -> str:
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    cls = ' class="wide"' if wide else ""
    return (
        f'<figure{cls}><img class="plot" data-plot="{esc(key)}" alt="{esc(caption)}" src="{uri}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


# ------------------------------------------------------------------ sections


def fact_rows(facts: dict) -> list[list]:
    """(label, value) rows of a run's facts: accuracies, targets and agreements as percentages, the way the
    step results and the notes print them; a target gain in points; a time to target never reached says
    so."""
    return [[k.replace("_", " "), fact_value(k, v)] for k, v in facts.items()]


def fact_value(key: str, value):
    if value is None:
        return "not reached" if "to_target" in key else "—"
    if not isinstance(value, float):
        return value
    if key.endswith("_gain"):
        return f"+{100 * value:g} points"
    named = any(word in key for word in ("accuracy", "target", "agreement"))
    if named and "to_target" not in key and 0.0 <= value <= 1.0:
        return f"{100 * value:.2f} %"
    return value


def section_summary(run: RunData) -> str | None:
    if not run.run:
        return None
    parts = []
    summary = run.run.get("summary") or {}
    if summary:
        parts.append(table(["figure", "value"], fact_rows(summary)))
    steps = run.run.get("steps") or []
    if steps:
        total = [["total", run.run["wall_s"], ""]] if "wall_s" in run.run else []
        parts.append(
            table(
                ["step", "wall time (s)", "result"],
                [[s.get("name"), s.get("seconds"), s.get("detail", "")] for s in steps] + total,
            )
        )
    return "".join(parts) or None


def section_federation(run: RunData) -> str | None:
    sim = run.simulation
    if not sim or not sim.get("runs"):
        return None
    runs = sim["runs"]
    target = sim.get("target_accuracy")
    note = start_note(sim)
    parts = [f'<p class="lead">{esc(note)}</p>'] if note else []
    parts += [
        figure(
            plots.accuracy_curves(runs, "sim_time_s", "simulated time (h)", 3600.0, target),
            "Global-model accuracy against simulated time (sync rounds with deadlines vs async buffered)",
            "accuracy-vs-time",
        ),
        figure(
            plots.accuracy_curves(runs, "version", "global model version (round)"),
            "Accuracy against round / model version",
            "accuracy-vs-round",
        ),
        figure(
            plots.accuracy_curves(runs, "bytes_up", "bytes sent by satellites (MB)", 1e6, target),
            "Accuracy against bytes sent by the satellites (updates on the downlink)",
            "accuracy-vs-bytes",
        ),
    ]
    rows = []
    for mode, r in runs.items():
        t = r.get("time_to_target_s")
        rows.append(
            [
                mode,
                r.get("label", ""),
                r.get("versions", len(r.get("history", []))),
                r.get("updates_received"),
                None if r.get("final_accuracy") is None else percent(r["final_accuracy"]),
                "not reached" if t is None else round(t / 3600.0, 2),
                r.get("bytes_up"),
                r.get("bytes_down"),
            ]
        )
    parts.append(
        table(
            [
                "mode",
                "aggregation",
                "model versions",
                "updates",
                "final accuracy",
                f"hours to {percent(target)}" if target else "hours to target",
                "bytes up",
                "bytes down",
            ],
            rows,
        )
    )
    cfg = sim.get("config") or {}
    if cfg:
        scalars = {k: v for k, v in cfg.items() if not isinstance(v, (dict, list))}
        parts.append(table(["setting", "value"], fact_rows(scalars)))
    return "".join(parts)


def section_rounds(run: RunData) -> str | None:
    """The per-round metrics file of a federation served by `edgefl aggregate --metrics`."""
    rows = run.rounds
    if not rows:
        return None
    sent = received = 0
    curve = []
    for r in rows:
        sent += r.get("bytes_up") or 0
        received += r.get("bytes_down") or 0
        curve.append({**r, "bytes_up_total": sent, "bytes_down_total": received})
    runs = {r.get("mode", "sync"): {"history": curve, "label": r.get("federation", "federation")}
            for r in rows[:1]}
    parts = []
    if any(r.get("accuracy") is not None for r in rows):
        parts += [
            figure(plots.accuracy_curves(runs, "round", "round (model version)"),
                   "Central evaluation of the global model after each round", "rounds-accuracy"),
            figure(plots.accuracy_curves(runs, "bytes_up_total", "bytes sent by clients (MB)", 1e6),
                   "Accuracy against the clients' cumulative update bytes", "rounds-accuracy-vs-bytes"),
            figure(plots.accuracy_curves(runs, "bytes_down_total", "bytes sent to clients (MB)", 1e6),
                   "Accuracy against the cumulative bytes of announcements and replies sent to the clients",
                   "rounds-accuracy-vs-bytes-down"),
        ]
    columns = ["round", "clients", "accuracy", "loss", "bytes_up", "bytes_down", "announcement_bytes",
               "snapshot_bytes", "rejected", "round_s", "eval_s"]
    parts.append(table(["round", "clients", "accuracy", "loss", "bytes up", "bytes down",
                        "announcement (bytes per client)", "snapshot (bytes)", "rejected", "round (s)",
                        "evaluation (s)"], [[r.get(c) for c in columns] for r in rows]))
    parts.append(
        "<p>Bytes up: the accepted updates as received. Bytes down: the announcement that opened the round, "
        "once per client that took part, plus the status replies. With coded announcements "
        "(<code>--downlink-codec</code>) the announcement is a delta; the full snapshot beside it is "
        "published once per round and only clients that missed a version fetch it.</p>"
    )
    return "".join(parts)


def section_contacts(run: RunData) -> str | None:
    if run.schedule is None:
        return None
    sched = run.schedule
    windows = {s: [(c.start_s, c.end_s) for c in sched.for_satellite(s)] for s in sched.satellites}
    runs = (run.simulation or {}).get("runs", {})
    shown = "async" if "async" in runs else next(iter(runs), None)
    events = (runs.get(shown) or {}).get("events") or []
    summary = sched.summary()
    transfers = f"; model transfers of the {shown} run" if events else ""
    return figure(
        plots.contact_timeline(windows, events),
        f"Contact windows per satellite ({summary['contacts']} passes over "
        f"{', '.join(sched.stations)}; mean pass {summary['mean_contact_s'] / 60:.1f} min{transfers})",
        "contact-timeline",
        wide=True,
    ) + table(["figure", "value"], [[k, v] for k, v in summary.items()])


def section_compression(run: RunData) -> str | None:
    comp = run.compression
    if not comp or not comp.get("layers"):
        return None
    layers = comp["layers"]
    names = [layer["name"] for layer in layers]
    bits, bops = [layer["w_bits"] for layer in layers], [layer["bops"] for layer in layers]
    parts = [
        figure(
            plots.layer_chart(names, bits, bops),
            f"Per layer: weight bits ({comp.get('method', '?')}) and BOPs "
            "(MACs × weight bits × activation bits)",
            "layers",
            wide=True,
        ),
    ]
    summary = comp.get("summary") or {}
    if summary:
        parts.append(table(["figure", "value"], fact_rows(summary)))
    parts.append(
        table(
            ["layer", "kind", "MACs", "params", "w bits", "a bits", "BOPs"],
            [
                [
                    r["name"],
                    r.get("kind"),
                    r.get("macs"),
                    r.get("params"),
                    r["w_bits"],
                    r.get("a_bits"),
                    r["bops"],
                ]
                for r in layers
            ],
        )
    )
    return "".join(parts)


def section_export(run: RunData) -> str | None:
    m = run.manifest
    if not m:
        return None
    profile = m.get("profile") or {}
    facts = [
        ["model", m.get("model")],
        ["profile", profile.get("name", profile)],
        ["precision", m.get("precision")],
        ["opset", m.get("opset")],
        ["inputs", ", ".join(f"{i.get('name')} {i.get('shape')}" for i in m.get("inputs", []))],
    ]
    parity = m.get("parity") or {}
    flat = [[k, v] for k, v in parity.items() if not isinstance(v, (dict, list))]
    for k, v in parity.items():
        if isinstance(v, dict):
            flat += [[f"{k}.{kk}", vv] for kk, vv in v.items() if not isinstance(vv, (dict, list))]
    return table(["bundle", "value"], facts) + (
        table(["parity check", "value"], flat)
        if flat
        else '<p class="note">no parity figures in the manifest</p>'
    )


def section_latency(run: RunData) -> str | None:
    lat = run.latency
    if not lat:
        return None
    label = f"{lat.get('engine', '?')}, batch {lat.get('batch', 1)}"
    parts = []
    if lat.get("samples_ms"):
        parts.append(
            figure(
                plots.latency_histogram(lat["samples_ms"], label), f"Inference latency ({label})", "latency"
            )
        )
    parts.append(table(["figure", "value"], [[k, v] for k, v in lat.items() if k != "samples_ms"]))
    return "".join(parts)


SECTIONS: list[tuple[str, Callable[[RunData], str | None]]] = [
    ("Summary", section_summary),
    ("Federation in orbit", section_federation),
    ("Federation rounds", section_rounds),
    ("Contact windows", section_contacts),
    ("Compression", section_compression),
    ("Export parity", section_export),
    ("Latency", section_latency),
]


def html_from_run(run: RunData, title: str = "edgefl run report") -> str:
    """The whole page; sections without data are listed as absent."""
    body, absent = [], []
    for name, build in SECTIONS:
        content = build(run)
        if content:
            body.append(
                f'<section id="{esc(name.lower().replace(" ", "-"))}"><h2>{esc(name)}</h2>{content}</section>'
            )
        else:
            absent.append(name)
    notes = run.notes + ([f"not in this run: {', '.join(absent)}"] if absent else [])
    note_html = "".join(f'<p class="note">{esc(n)}</p>' for n in notes)
    created = (run.run or {}).get("created", "")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>"
        f'<p class="note">{esc(run.root.name)} {esc(created)}</p>{"".join(body)}{note_html}</body></html>'
    )
