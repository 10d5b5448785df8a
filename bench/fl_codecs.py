"""Update codecs on a 1M-parameter update: bytes on the wire, encode/decode time (one core), error.

The update is synthetic but shaped like a CNN's: a 256x128x3x3 conv, a 1000x700 linear layer and
their biases (~1.0M parameters), heavy-tailed (Student-t, 3 d.o.f.) like real gradient deltas.
Bytes are whole wire messages (safetensors header, metadata, side information included).

    OMP_NUM_THREADS=1 python bench/fl_codecs.py
Writes bench/results/fl_codecs.json.
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one core, as on a busy board

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections import OrderedDict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "fl_codecs.json"
ROWS = [
    ("none", {}),
    ("fp16", {}),
    ("int8", {}),
    ("topk", {"ratio": 0.01}),
    ("rsdgc", {"ratio": 0.02}),
    ("fedfq", {"rate": 0.032}),
    ("fedfq", {"rate": 0.009}),
    ("fedfq", {"rate": 0.032, "init": "spec"}),
    ("fedfq", {"rate": 1 / 64, "budget": "wire"}),
    ("fedfq", {"rate": 1 / 64, "budget": "wire", "rounding": "nearest"}),
]


def synthetic_update(seed=0):
    rng = np.random.RandomState(seed)
    shapes = OrderedDict(
        [
            ("conv.weight", (256, 128, 3, 3)),
            ("conv.bias", (256,)),
            ("fc.weight", (1000, 700)),
            ("fc.bias", (1000,)),
        ]
    )
    return OrderedDict((n, (rng.standard_t(3, s) * 1e-3).astype(np.float32)) for n, s in shapes.items())


def best_of(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    from edgefl.runtime.codecs import make_codec
    from edgefl.runtime.wire import Message, decode_message, encode_message

    delta = synthetic_update()
    shapes = OrderedDict((n, v.shape) for n, v in delta.items())
    d = sum(v.size for v in delta.values())
    norm = np.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in delta.values()))
    rows = []
    for name, options in ROWS:
        codec = make_codec(name, **options)
        t_enc, (enc, params) = best_of(lambda: codec.encode(delta, {}, np.random.RandomState(0)), args.repeat)
        blob = encode_message(
            Message("update", "bench", 1, "c0", "0" * 64, 1, name, {}, {"codec": params}, enc)
        )
        t_dec, dec = best_of(lambda: codec.decode(decode_message(blob).tensors, params, shapes), args.repeat)
        err = np.sqrt(sum(float(np.sum((dec[n].astype(np.float64) - delta[n]) ** 2)) for n in delta)) / norm
        rows.append(
            {
                "codec": name,
                "options": options,
                "bytes": len(blob),
                "bits_per_param": 8 * len(blob) / d,
                "encode_s": t_enc,
                "decode_s": t_dec,
                "relative_error": err,
            }
        )
    base = rows[0]["bytes"]
    for r in rows:
        r["compression_vs_fp32"] = base / r["bytes"]
    result = {"bench": "fl_codecs", "parameters": d, "threads": 1, "repeat": args.repeat, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    t = Table(title=f"update codecs, {d:,} parameters, one core (best of {args.repeat})")
    for c in ("codec", "options", "bytes", "bits/param", "× vs fp32", "encode ms", "decode ms", "rel. error"):
        t.add_column(c)
    for r in rows:
        t.add_row(
            r["codec"],
            json.dumps(r["options"]),
            f"{r['bytes']:,}",
            f"{r['bits_per_param']:.3f}",
            f"{r['compression_vs_fp32']:.1f}",
            f"{1e3 * r['encode_s']:.0f}",
            f"{1e3 * r['decode_s']:.0f}",
            f"{r['relative_error']:.3f}",
        )
    Console(width=150).print(t)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
