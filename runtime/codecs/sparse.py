"""Sparsifying codecs with error feedback: top-k and an RS-DGC-style NSI sparsifier.

Both send, per tensor, ``{name}/i`` (uint32 flat indices, strictly increasing) and ``{name}/v``
(values, fp32 or fp16): 8 (or 6) bytes per kept entry plus the header. Entries not sent stay in
the error-feedback residual and are added to the next round's update.

RS-DGC (Xie et al., IEEE TGRS 2024) is a RECONSTRUCTION from the abstract (no code or full text
was available): the Neighbourhood Statistical Indicator is a box-filtered |g| (a k x k spatial
window per conv filter, a 1-D window for other tensors); entries are kept by NSI rank; each
layer's ratio follows an EMA of its mean NSI share under a global budget (arXiv 2312.17530).
Deviation from the plain reading (a layer's share of the summed NSI): the share uses the MEAN
NSI of a layer, so a large layer does not take the budget just for being large.
"""

from collections import OrderedDict

import numpy as np

from edgefl.runtime.codecs.base import (Codec, expect_array, expect_keys, residual_add,
                                        size_of)
from edgefl.runtime.errors import CodecError

_VALUE_DTYPES = {"fp32": np.float32, "fp16": np.float16}


def _select(acc, score, k, value_dtype):
    """Keep the k entries of ``acc`` with the largest ``score``; return (idx, values, residual)."""
    flat = acc.ravel()
    k = int(min(max(k, 0), flat.size))
    if k == 0:
        idx = np.zeros(0, np.int64)
    elif k == flat.size:
        idx = np.arange(flat.size)
    else:
        idx = np.sort(np.argpartition(score.ravel(), flat.size - k)[flat.size - k:])
    values = flat[idx].astype(value_dtype)
    residual = flat.copy()
    residual[idx] -= values.astype(np.float32)
    return idx.astype(np.uint32), values, residual.reshape(acc.shape)


class _SparseCodec(Codec):
    def __init__(self, value_dtype="fp32"):
        if value_dtype not in _VALUE_DTYPES:
            raise TypeError("value_dtype must be one of {}".format(sorted(_VALUE_DTYPES)))
        self.value_dtype = value_dtype

    def _pack(self, acc, scores, ks, state):
        out, residual = OrderedDict(), {}
        for n, v in acc.items():
            idx, values, residual[n] = _select(v, scores[n], ks[n],
                                               _VALUE_DTYPES[self.value_dtype])
            out[n + "/i"], out[n + "/v"] = idx, values
        state["residual"] = residual
        return out

    def decode(self, tensors, params, shapes):
        expect_keys(tensors, [n + k for n in shapes for k in ("/i", "/v")])
        out = OrderedDict()
        for n, s in shapes.items():
            idx = expect_array(tensors, n + "/i", np.uint32, ndim=1)
            vals = tensors[n + "/v"]
            if vals.dtype not in (np.dtype(np.float32), np.dtype(np.float16)) or \
                    vals.shape != idx.shape:
                raise CodecError("sparse-values", "{}/v must be fp32/fp16 like {}/i".format(
                    n[:60], n[:60]))
            d = size_of(s)
            if idx.size and (int(idx[-1]) >= d or np.any(np.diff(idx.astype(np.int64)) <= 0)):
                raise CodecError("sparse-indices", "{}: indices must increase and be < {}".format(
                    n[:60], d))
            flat = np.zeros(d, np.float32)
            flat[idx.astype(np.int64)] = vals
            out[n] = flat.reshape(s)
        return out


class TopKCodec(_SparseCodec):
    """Top-k by magnitude per tensor (k = ceil(ratio * size)), with error feedback."""

    name = "topk"

    def __init__(self, ratio=0.01, value_dtype="fp32"):
        super(TopKCodec, self).__init__(value_dtype)
        if not 0.0 < ratio <= 1.0:
            raise TypeError("ratio must be in (0, 1]")
        self.ratio = float(ratio)

    def config(self):
        return {"ratio": self.ratio, "value_dtype": self.value_dtype}

    def encode(self, delta, state, rng):
        acc = residual_add(state, delta)
        ks = {n: int(np.ceil(self.ratio * v.size)) for n, v in acc.items()}
        return self._pack(acc, {n: np.abs(v) for n, v in acc.items()}, ks, state), {}


def _box_mean_1d(a, w):
    """Mean of |a| over a centred window of width w (truncated at the ends)."""
    h = w // 2
    c = np.concatenate([[0.0], np.cumsum(a, dtype=np.float64)])
    i = np.arange(a.size)
    lo, hi = np.maximum(i - h, 0), np.minimum(i + h + 1, a.size)
    return ((c[hi] - c[lo]) / (hi - lo)).astype(np.float32)


def _box_mean_2d(a, w):
    """Mean over a w x w window on the last two axes (truncated at the borders)."""
    h = w // 2
    H, W = a.shape[-2:]
    p = np.zeros(a.shape[:-2] + (H + 1, W + 1), np.float64)
    p[..., 1:, 1:] = a.cumsum(-2).cumsum(-1)
    r0, r1 = np.maximum(np.arange(H) - h, 0), np.minimum(np.arange(H) + h + 1, H)
    c0, c1 = np.maximum(np.arange(W) - h, 0), np.minimum(np.arange(W) + h + 1, W)
    s = (p[..., r1[:, None], c1[None, :]] - p[..., r0[:, None], c1[None, :]]
         - p[..., r1[:, None], c0[None, :]] + p[..., r0[:, None], c0[None, :]])
    cnt = (r1 - r0)[:, None] * (c1 - c0)[None, :]
    return (s / cnt).astype(np.float32)


def neighbourhood_indicator(g, window=3, lam=0.0):
    """NSI: box-filtered |g| (plus ``lam`` x the local std when lam > 0)."""
    a = np.abs(g).astype(np.float32)
    box = (lambda t: _box_mean_2d(t, window)) if g.ndim >= 3 else \
        (lambda t: _box_mean_1d(t.ravel(), window).reshape(t.shape))
    nsi = box(a)
    if lam > 0:
        nsi = nsi + lam * np.sqrt(np.maximum(box(a * a) - nsi * nsi, 0.0))
    return nsi


class RSDGCCodec(_SparseCodec):
    """RS-DGC-style sparsifier (reconstruction): NSI ranking + layer-wise dynamic ratios.

    Args:
        ratio: global fraction of entries kept (1/50 for "> 50x").
        window: neighbourhood width (k x k for conv kernels, 1-D otherwise).
        beta: EMA factor of the per-layer importance.
        lam: weight of the neighbourhood std in the NSI.
    """

    name = "rsdgc"

    def __init__(self, ratio=0.02, window=3, beta=0.9, lam=0.0, value_dtype="fp32"):
        super(RSDGCCodec, self).__init__(value_dtype)
        if not 0.0 < ratio <= 1.0:
            raise TypeError("ratio must be in (0, 1]")
        self.ratio, self.window, self.beta, self.lam = float(ratio), int(window), float(beta), \
            float(lam)

    def config(self):
        return {"ratio": self.ratio, "window": self.window, "beta": self.beta, "lam": self.lam,
                "value_dtype": self.value_dtype}

    def layer_ratios(self, nsi, state):
        """Update the EMA importance and return per-layer keep ratios under the global budget."""
        mean = {n: float(v.mean()) if v.size else 0.0 for n, v in nsi.items()}
        total = sum(mean.values()) or 1.0
        prev = state.get("importance", {})
        imp = {n: self.beta * prev[n] + (1 - self.beta) * mean[n] / total if n in prev
               else mean[n] / total for n in nsi}
        state["importance"] = imp
        sizes = {n: v.size for n, v in nsi.items()}
        budget = self.ratio * sum(sizes.values())
        denom = sum(imp[n] * sizes[n] for n in nsi) or 1.0
        return {n: min(1.0, budget * imp[n] / denom) for n in nsi}

    def encode(self, delta, state, rng):
        acc = residual_add(state, delta)
        nsi = OrderedDict((n, neighbourhood_indicator(v, self.window, self.lam))
                          for n, v in acc.items())
        rho = self.layer_ratios(nsi, state)
        ks = {n: max(1, int(round(rho[n] * v.size))) for n, v in acc.items()}
        return self._pack(acc, nsi, ks, state), {}
