"""The streaming fold's inner loop in C, compiled on first use; numpy is the reference and the
fallback (``edgefl.runtime.fold``).

The numpy loop makes five passes over each cache-sized block (range check, float64 copy,
scale, round, add): on one core it handles update bytes at about 40 % of memcpy bandwidth.
This kernel does the same arithmetic in two passes over each L2-sized block of the update (one
to check every entry, one to scale, round and add), so an aggregator keeps up with the memory
bus. Both give the
same integers, entry by entry: ``rint(float64(x) * c)`` rounded half to even, plus the same
magic constant per entry (``fold.py``'s ``offsets``), so sums folded by either can be mixed.

Built with the system C compiler (``cc``, or ``$CC``) into ``$EDGEFL_CACHE_DIR`` (default
``~/.cache/edgefl``), once per machine and source version; without a compiler the fold stays
on numpy. ``EDGEFL_FOLD_KERNEL``: ``auto`` (default: compiled when it builds), ``numpy``
(never compile), ``compiled`` (fail when it cannot be built: benches use it).

Python 3.6, numpy 1.19, ctypes: no other dependency.
"""

import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile

import numpy as np

__all__ = ["kernel", "fold_f32", "MODES"]

MODES = ("auto", "numpy", "compiled")

SOURCE = r"""
#include <stdint.h>
#include <string.h>
#include <math.h>

#define BLOCK 8192  /* entries: a block of x and of acc stay in L2 between the two passes */

/* The largest |x[i]| as float32 bits (an int32 >= 0): NaN and Inf are above any finite limit. */
static int32_t worst_bits(const float *x, long long n)
{
    int32_t worst = 0;
    long long i;
    for (i = 0; i < n; i++) {
        int32_t b;
        memcpy(&b, &x[i], 4);
        b &= 0x7fffffff;
        worst = b > worst ? b : worst;
    }
    return worst;
}

/* acc[i] += sign * (rint((double)x[i] * c) + magic_bits), wrapping as two's complement. Fast
   path when |x * c| < 2**50 for the whole block: x * c + 1.5 * 2**52 then holds the rounded
   value in its low mantissa bits (the same integer as rint). */
static void fold_block(int64_t *acc, const float *x, long long n, double c, int32_t worst,
                       int sign)
{
    const double magic = 6755399441055744.0;           /* 1.5 * 2**52 */
    const uint64_t magic_bits = 0x4338000000000000ULL;  /* its bit pattern */
    float largest;
    long long i;
    memcpy(&largest, &worst, 4);
    if ((double)largest * fabs(c) < 1125899906842624.0) {  /* 2**50 */
        for (i = 0; i < n; i++) {
            double t = (double)x[i] * c + magic;
            uint64_t k;
            memcpy(&k, &t, 8);
            acc[i] = (int64_t)(sign > 0 ? (uint64_t)acc[i] + k : (uint64_t)acc[i] - k);
        }
    } else {
        for (i = 0; i < n; i++) {
            uint64_t k = (uint64_t)(int64_t)rint((double)x[i] * c) + magic_bits;
            acc[i] = (int64_t)(sign > 0 ? (uint64_t)acc[i] + k : (uint64_t)acc[i] - k);
        }
    }
}

/* -1 after folding every entry when each is finite with |x[i]| <= limit (a finite float32);
   else 0 with acc as it was (the blocks folded before the bad one are taken out again). */
long long edgefl_fold_f32(int64_t *acc, const float *x, long long n, double c, float limit,
                          int sign)
{
    int32_t top;
    long long s, t;
    memcpy(&top, &limit, 4);
    for (s = 0; s < n; s += BLOCK) {
        long long e = s + BLOCK < n ? s + BLOCK : n;
        int32_t worst = worst_bits(x + s, e - s);
        if (worst > top) {
            for (t = 0; t < s; t += BLOCK)
                fold_block(acc + t, x + t, BLOCK, c, worst_bits(x + t, BLOCK), -sign);
            return 0;
        }
        fold_block(acc + s, x + s, e - s, c, worst, sign);
    }
    return -1;
}
"""

# -ffp-contract=off: x * c + magic stays two roundings (no FMA), as in numpy. -march=native: the
# vector units this CPU has (SSE2 alone runs the range check at a third of the speed); the
# cached library is named by the CPU's feature flags, so a home folder shared by different
# machines never loads one built for another. Without -march=native when the compiler refuses.
_FLAGS = ["-O3", "-std=c99", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math"]
_NATIVE = ["-march=native"]
_state = {"kernel": None, "tried": False, "error": ""}


def mode():
    """The EDGEFL_FOLD_KERNEL setting (``auto`` when unset)."""
    value = os.environ.get("EDGEFL_FOLD_KERNEL", "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError("EDGEFL_FOLD_KERNEL={!r}: use one of {}".format(value, ", ".join(MODES)))
    return value


def cache_dir():
    base = os.environ.get("EDGEFL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "edgefl")
    return base


def _cpu():
    """The CPU's model and feature flags (Linux), else what the platform module knows."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.split(":")[0].strip() in
                     ("flags", "Features", "model name", "CPU part")]
        return "".join(sorted(set(lines)))
    except (IOError, OSError):
        return platform.processor()


def library_path():
    tag = hashlib.sha256("|".join([SOURCE, " ".join(_FLAGS + _NATIVE), _cpu()])
                         .encode("utf-8")).hexdigest()[:16]
    return os.path.join(cache_dir(), "fold-{}-{}.so".format(tag, platform.machine() or "any"))


def _build(path):
    """Compile SOURCE to ``path`` (atomic: a temp file, then a rename)."""
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder)
    fd, src = tempfile.mkstemp(suffix=".c", dir=folder)
    out = src[:-2] + ".so"
    try:
        with os.fdopen(fd, "w") as f:
            f.write(SOURCE)
        cc = os.environ.get("CC") or "cc"
        for extra in (_NATIVE, []):
            run = subprocess.run([cc] + _FLAGS + extra + ["-o", out, src, "-lm"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if run.returncode == 0:
                break
        if run.returncode != 0:
            lines = run.stderr.decode("utf-8", "replace").strip().splitlines()
            raise OSError("{} failed ({})".format(cc, lines[-1] if lines else
                                                  "exit {}".format(run.returncode)))
        os.replace(out, path)
    finally:
        for leftover in (src, out):
            if os.path.exists(leftover):
                os.unlink(leftover)


def _load():
    path = library_path()
    if not os.path.exists(path):
        _build(path)
    lib = ctypes.CDLL(path)
    fn = lib.edgefl_fold_f32
    fn.restype = ctypes.c_longlong
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong, ctypes.c_double,
                   ctypes.c_float, ctypes.c_int]
    return fn


def kernel():
    """The compiled function, or None (numpy fold) — built at most once per process. An unknown
    EDGEFL_FOLD_KERNEL folds on numpy (``prepare`` refuses it where a service starts)."""
    try:
        wanted = mode()
    except ValueError:
        return None
    if wanted == "numpy":
        return None
    if not _state["tried"]:
        _state["tried"] = True
        try:
            _state["kernel"] = _load()
        except (OSError, ValueError, AttributeError) as exc:
            _state["error"] = str(exc) or type(exc).__name__
    if _state["kernel"] is None and wanted == "compiled":
        raise RuntimeError("EDGEFL_FOLD_KERNEL=compiled, but the fold kernel did not build "
                           "({}): install a C compiler (cc) or unset it".format(_state["error"]))
    return _state["kernel"]


def describe():
    """``compiled`` or ``numpy (why)``: what folds in this process."""
    try:
        wanted = mode()
        fn = kernel()
    except (ValueError, RuntimeError) as exc:
        return "numpy ({})".format(exc)
    if fn is not None:
        return "compiled"
    return "numpy ({})".format("EDGEFL_FOLD_KERNEL=numpy" if wanted == "numpy"
                               else _state["error"] or "no kernel")


def prepare():
    """Build (or load) the kernel before the first update, and say what will fold: the line an
    aggregator logs at start. A bad ``EDGEFL_FOLD_KERNEL``, or ``compiled`` without a compiler,
    is an EdgeRuntimeError (one line, what to do)."""
    from edgefl.runtime.errors import EdgeRuntimeError

    try:
        mode()
        kernel()
    except (ValueError, RuntimeError) as exc:
        raise EdgeRuntimeError(str(exc))
    return describe()


def fold_f32(fn, acc, x, c, limit, sign):
    """``fn`` on contiguous arrays: True when folded, False when an entry is not finite or
    beyond ``limit`` (acc untouched)."""
    return fn(acc.ctypes.data, x.ctypes.data, x.size, float(c), float(limit), int(sign)) < 0


def usable(acc, x, limit):
    """Whether the kernel can fold ``x`` into ``acc`` without a copy (and ``limit`` is a
    float32 the check can compare bit patterns with)."""
    return (limit < 2.0 ** 127 and x.dtype == np.float32 and acc.dtype == np.int64 and x.flags["C_CONTIGUOUS"]
            and acc.flags["C_CONTIGUOUS"] and acc.flags["WRITEABLE"] and x.size == acc.size)
