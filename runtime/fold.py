"""The streaming fold: an exact running weighted sum of updates, on a fixed-point grid.

FedAvg and FedBuff are weighted sums, so an aggregator never needs to keep an update: it folds
each accepted update into a running sum as it arrives and forgets it. The sum is exact integer
arithmetic, which buys three things a float64 running sum cannot give:

* the same updates in any order give bitwise the same sum (integer addition is associative);
* a hierarchy of aggregators gives bitwise the same sum as one: a regional aggregator's partial
  sum is just more integers to add (``merge``);
* an update can be taken out again exactly (``subtract``), so a rejection after folding, or an
  error while closing a round, leaves the fold as it was.

Grid. Tensor ``t`` is summed in units of ``2**-bits[t]``: update k contributes
``rint(x * coef_k * 2**bits)`` per entry (``coef_k``: its FedAvg example count, or its FedBuff
staleness weight, times its clipping factor) to an int64 sum. The grid is fixed when a round
opens (:func:`grid_for`), from two bounds: every entry of an accepted delta is at most
``2**range[t]`` in magnitude (a validation row: larger entries are rejected with ``range``), and
the weights of one round add up to at most ``weight_bound``. Then every partial sum stays below
``2**62``: no overflow whatever the order. ``range[t]`` is ``HEADROOM_BITS`` (8) above the
largest magnitude in the tensor's global model (at least 1): a delta entry 256 times the
tensor's largest weight is refused.

Error against real arithmetic: each contribution is rounded once, by at most half a grid step,
so the mean of tensor t is off by at most ``count * 2**-(bits + 1) / weight`` (reported per
round as ``fold_error_bound``); the grid is as fine as the bounds allow (``62 - range -
log2(weight_bound)`` bits), so declare realistic example counts (``client_max_examples``).

Speed. Entries whose scaled magnitude stays below 2**51 are rounded with the float64 "magic
number" trick: ``x * c + 1.5 * 2**52`` holds ``rint(x * c)`` in its low mantissa bits, so its
int64 view is that integer plus a constant; the sum keeps a count of the constants added
(``offsets``) and removes them when read. Larger entries take ``np.rint`` and a cast. Both give
the same integer. The work runs in cache-sized blocks: one pass over each update's bytes checks
finiteness and range, scales, rounds and adds; a block out of range takes the blocks before it
out again, so a refused update leaves the sum as it was. Where a C compiler is present the
same arithmetic runs compiled (``edgefl.runtime.fold_kernel``: two passes over each block, the
same integers); numpy is the reference and the fallback.

Python 3.6 and numpy; nothing here touches the network or the clock (the compiled kernel is
built once into a cache folder).
"""

import math
from collections import OrderedDict

import numpy as np

from edgefl.runtime import fold_kernel, heap

__all__ = ["HEADROOM_BITS", "Fold", "grid_for"]

HEADROOM_BITS = 8
_SUM_BITS = 62  # every partial sum stays below 2**62 in magnitude
_MAGIC = np.float64(1.5 * 2 ** 52)
_MAGIC_BITS = 0x4338000000000000  # the int64 view of _MAGIC
_FAST = 2.0 ** 50  # below this, x * c + _MAGIC rounds x * c to an integer in the low bits
_BLOCK = 1 << 15  # entries per block: the float64 scratch stays in L2
_CLOSE_BLOCK = 1 << 13  # entries per block of the mean: small temporaries at the close
_RELEASE_EVERY = 1 << 17  # entries of the sum (1 MiB) given back at a time at the close


def _wrap(value):
    """A Python int as the int64 it is modulo 2**64 (numpy int64 sums wrap the same way)."""
    return np.int64(((int(value) + 2 ** 63) % 2 ** 64) - 2 ** 63)


def grid_for(model, weight_bound, headroom=HEADROOM_BITS):
    """The fixed-point grid of one round: ``{name: [bits, range]}``.

    Args:
        model: the round's global model (name -> array): it sets each tensor's range.
        weight_bound: the most the weights of one round can add up to (FedAvg: the example
            counts of every client that may contribute; FedBuff: the buffer size).
        headroom: bits of range above the tensor's largest global magnitude (at least 1).
    """
    wbits = max(0, int(math.ceil(math.log(max(float(weight_bound), 1.0), 2))))
    out = OrderedDict()
    for name in sorted(model):
        a = np.asarray(model[name])
        top = max(-float(a.min()), float(a.max())) if a.size else 0.0  # no |a| temporary
        top = top if np.isfinite(top) else 1.0
        rng = max(0, int(math.ceil(math.log(max(top, 1.0), 2)))) + int(headroom)
        out[name] = [_SUM_BITS - rng - wbits, rng]
    return out


class Fold(object):
    """An exact running weighted sum (see the module docstring).

    Args:
        shapes: name -> shape of the tensors folded.
        grid: name -> [bits, range] (:func:`grid_for`); the same grid for everything merged.

    ``weight`` is the sum of the weights added (the FedAvg/FedBuff denominator) and ``count``
    the number of updates; both are exact Python numbers.
    """

    def __init__(self, shapes, grid):
        self.shapes = OrderedDict((n, tuple(int(d) for d in shapes[n])) for n in sorted(shapes))
        if set(grid) != set(self.shapes):
            raise ValueError("the fold's grid names other tensors than its shapes")
        self.grid = OrderedDict((n, [int(grid[n][0]), int(grid[n][1])]) for n in self.shapes)
        self.sums = None  # name -> int64 array, allocated on the first add
        self._scratch = None  # (float64, int64) block buffers, reused: no allocation per update
        self.offsets = 0  # magic constants inside every entry of ``sums`` (see the docstring)
        self.weight = 0
        self.count = 0

    # --- adding and taking out --------------------------------------------------------------
    def _arrays(self):
        if self.sums is None:  # zero pages: memory is only touched as updates are folded
            self.sums = OrderedDict((n, heap.anonymous_array(int(np.prod(s)), np.int64))
                                    for n, s in self.shapes.items())
        return self.sums

    def _buffers(self):
        if self._scratch is None:
            size = min(_BLOCK, max([int(np.prod(s)) for s in self.shapes.values()] + [1]))
            self._scratch = (np.empty(size, np.float64), np.empty(size, np.int64))
        return self._scratch

    def add(self, tensors, coef, weight):
        """Fold ``coef * tensors`` in and add ``weight`` to the denominator.

        Returns None, or the rejection reason (``non-finite: ...`` / ``range: ...``) with the
        fold left as it was.
        """
        sums, done = self._arrays(), []
        for n in self.shapes:
            reason = _fold_tensor(sums[n], _flat(tensors[n]), coef, self.grid[n], 1, n,
                                  self._buffers())
            if reason is not None:
                for m in done:  # exact: the same integers come out again
                    _fold_tensor(sums[m], _flat(tensors[m]), coef, self.grid[m], -1, m,
                                 self._buffers())
                return reason
            done.append(n)
        self.offsets += 1
        self.weight += weight
        self.count += 1
        return None

    def subtract(self, tensors, coef, weight):
        """Take out exactly what ``add(tensors, coef, weight)`` put in."""
        sums = self._arrays()
        for n in self.shapes:
            _fold_tensor(sums[n], _flat(tensors[n]), coef, self.grid[n], -1, n, self._buffers())
        self.offsets -= 1
        self.weight -= weight
        self.count -= 1

    def merge(self, sums, weight, count):
        """Add another fold's :meth:`exact_sums` (a regional aggregator's partial)."""
        mine = self._arrays()
        for n in self.shapes:
            np.add(mine[n], np.asarray(sums[n], np.int64).reshape(-1), out=mine[n])
        self.weight += weight
        self.count += count

    # --- reading ----------------------------------------------------------------------------
    def exact_sums(self):
        """name -> int64 sums in grid units (the offsets taken out, in place)."""
        sums = self._arrays()
        if self.offsets:
            k = _wrap(self.offsets * _MAGIC_BITS)
            for a in sums.values():
                np.subtract(a, k, out=a)
            self.offsets = 0
        return OrderedDict((n, a.reshape(self.shapes[n])) for n, a in sums.items())

    def mean(self, name, out=None):
        """The weighted mean of tensor ``name`` as float32 (``sum / weight``)."""
        size = int(np.prod(self.shapes[name]))
        res = np.empty(size, np.float32) if out is None else out.reshape(-1)
        for s, e, block in self.mean_blocks(name):
            res[s:e] = block
        return res.reshape(self.shapes[name])

    def mean_blocks(self, name, release=False):
        """The weighted mean of tensor ``name`` block by block: (start, end, float32 values),
        each block valid until the next is taken — no tensor-sized temporary. ``release``: give
        each consumed range of the sum back to the system as it goes (the round's close: the
        sum is not read again; ``heap.release``)."""
        if not self.weight:
            raise ValueError("the fold holds no weight")
        sums = self.exact_sums()[name].reshape(-1)
        scale = 2.0 ** -self.grid[name][0]
        size = min(_CLOSE_BLOCK, sums.size)
        tmp, out = np.empty(size, np.float64), np.empty(size, np.float32)
        given = 0
        for s in range(0, sums.size, _CLOSE_BLOCK):
            e = min(sums.size, s + _CLOSE_BLOCK)
            t = tmp[:e - s]
            np.copyto(t, sums[s:e], casting="unsafe")
            np.multiply(t, scale, out=t)
            np.divide(t, float(self.weight), out=t)
            o = out[:e - s]
            o[...] = t
            if release and e - given >= _RELEASE_EVERY:
                heap.release(self.sums[name], given, e)
                given = e
            yield s, e, o
        if release:
            heap.release(self.sums[name], given, sums.size)

    def error_bound(self):
        """Most any entry of the mean can be off real arithmetic (rounding of the grid)."""
        if not self.weight:
            return 0.0
        finest = min(bits for bits, _ in self.grid.values()) if self.grid else 0
        return float(self.count) * 2.0 ** -(finest + 1) / float(self.weight)

    def reset(self):
        """Empty the fold and free its sums."""
        self.sums, self.offsets, self.weight, self.count = None, 0, 0, 0
        self._scratch = None

    # --- persistence ------------------------------------------------------------------------
    def to_state(self):
        """(tensors, JSON-able dict) to persist; ``from_state`` restores them."""
        tensors = OrderedDict() if self.sums is None else OrderedDict(
            (n, a.reshape(self.shapes[n])) for n, a in self.sums.items())
        info = {"grid": [[n, g] for n, g in self.grid.items()], "offsets": self.offsets,
                "weight": self.weight, "count": self.count,
                "shapes": [[n, list(s)] for n, s in self.shapes.items()]}
        return tensors, info

    @classmethod
    def from_state(cls, tensors, info):
        fold = cls(OrderedDict((n, s) for n, s in info["shapes"]),
                   OrderedDict((n, g) for n, g in info["grid"]))
        if tensors:
            fold.sums = fold._arrays()
            for n in fold.shapes:
                np.copyto(fold.sums[n], np.asarray(tensors[n], np.int64).reshape(-1))
        fold.offsets, fold.weight, fold.count = info["offsets"], info["weight"], info["count"]
        return fold


def _flat(array):
    return np.asarray(array).reshape(-1)


def _fold_tensor(acc, x, coef, grid, sign, name, scratch):
    """``acc += sign * rint(x * coef * 2**bits)`` (+ one magic constant per entry, fast path
    or not); a reason string, with ``acc`` as it was, when an entry is not finite or out of
    range. The compiled kernel (``fold_kernel``) when it is built, else numpy block by block."""
    bits, rng = grid
    if x.size != acc.size:
        raise ValueError("{}: {} entries, the fold holds {}".format(name, x.size, acc.size))
    c = float(coef) * 2.0 ** bits
    limit = 2.0 ** rng
    fn = fold_kernel.kernel()
    if fn is not None and fold_kernel.usable(acc, x, limit):
        if fold_kernel.fold_f32(fn, acc, x, c, limit, sign):
            return None
        return _value_problem(x, name, rng)
    for s in range(0, x.size, _BLOCK):
        if not _fold_block(acc, x, s, min(x.size, s + _BLOCK), c, limit, sign, scratch):
            for t in range(0, s, _BLOCK):  # exact: the blocks folded so far come out again
                _fold_block(acc, x, t, min(x.size, t + _BLOCK), c, limit, -sign, scratch)
            return _value_problem(x, name, rng)
    return None


def _fold_block(acc, x, s, e, c, limit, sign, scratch):
    """One block of :func:`_fold_tensor` in numpy: False (nothing added) when it is out of range."""
    tmp, ints = scratch
    xb, t, a = x[s:e], tmp[:e - s], acc[s:e]
    lo, hi = xb.min(), xb.max()
    if not (lo >= -limit and hi <= limit):  # NaN fails both comparisons
        return False
    np.copyto(t, xb)  # float32 -> float64, then the product in float64
    np.multiply(t, c, out=t)
    if max(-float(lo), float(hi)) * abs(c) < _FAST:
        np.add(t, _MAGIC, out=t)
        vals = t.view(np.int64)
    else:  # rare: a large weight on a large entry
        np.rint(t, out=t)
        vals = ints[:e - s]
        np.copyto(vals, t, casting="unsafe")
        np.add(vals, _wrap(_MAGIC_BITS), out=vals)  # keep one constant per entry on both paths
    if sign > 0:
        np.add(a, vals, out=a)
    else:
        np.subtract(a, vals, out=a)
    return True


def _value_problem(x, name, rng):
    if not np.all(np.isfinite(x)):
        return "non-finite: NaN or Inf in {!r}".format(name[:60])
    return "range: an entry of {!r} is {:.4g}, beyond 2**{} (the fixed-point sum's bound: {} " \
           "times the tensor's largest weight)".format(name[:60], float(np.max(np.abs(x))), rng,
                                                       2 ** HEADROOM_BITS)
