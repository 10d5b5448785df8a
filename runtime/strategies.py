"""Aggregation strategies as pure numpy functions over client updates.

An update is a delta (local - global) per tensor. Every strategy takes a list of
:class:`ClientUpdate` and returns the aggregated delta (float32); the aggregator applies it as
``global + server_lr * delta``. Results do not depend on the order of the list: updates are
sorted by client id (then base version) before any sum, and sums accumulate in float64.

FedAvg and FedBuff are weighted means, so the aggregator streams them instead: each update is
folded into an exact running sum as it arrives (``edgefl.runtime.fold``) with the coefficient
and weight :func:`fold_weight` gives. Median and trimmed mean need every update at once.
"""

from collections import OrderedDict, namedtuple

import numpy as np

from edgefl.runtime.errors import EdgeRuntimeError

__all__ = ["ClientUpdate", "FOLD_WEIGHTS", "STRATEGIES", "STALENESS", "aggregate", "fedavg",
           "fedbuff", "fold_weight", "median", "trimmed_mean", "clip_by_norm", "prox_gradient",
           "prox_penalty", "update_norm"]

ClientUpdate = namedtuple("ClientUpdate", "client_id num_examples tensors staleness")
ClientUpdate.__new__.__defaults__ = (0,)


def _sorted(updates):
    if not updates:
        raise EdgeRuntimeError("no updates to aggregate")
    return sorted(updates, key=lambda u: (u.client_id, u.staleness))


def _names(updates):
    return sorted(updates[0].tensors)


_BLOCK = 1 << 15  # elements per cache-resident float64 block


def _weighted_sum(updates, weights):
    """sum_k w_k * x_k per tensor, float64 accumulation, in cache-sized blocks so each update is
    read from memory once (the per-element summation order is the sorted client order)."""
    out = OrderedDict()
    acc, tmp = np.empty(_BLOCK, np.float64), np.empty(_BLOCK, np.float64)
    for n in _names(updates):
        shape = np.shape(updates[0].tensors[n])
        flats = [np.asarray(u.tensors[n]).reshape(-1) for u in updates]
        res = np.empty(flats[0].size, np.float32)
        for start in range(0, res.size, _BLOCK):
            stop = min(res.size, start + _BLOCK)
            a, t = acc[:stop - start], tmp[:stop - start]
            a.fill(0.0)
            for x, w in zip(flats, weights):
                np.multiply(x[start:stop], w, out=t)
                a += t
            res[start:stop] = a
        out[n] = res.reshape(shape)
    return out


def fedavg(updates):
    """FedAvg: mean of the deltas weighted by each client's number of examples."""
    ups = _sorted(updates)
    total = float(sum(u.num_examples for u in ups))
    if total <= 0:
        raise EdgeRuntimeError("FedAvg needs num_examples > 0 in at least one update")
    return _weighted_sum(ups, [u.num_examples / total for u in ups])


def inv_sqrt_1p(tau):
    """s(tau) = 1 / sqrt(1 + tau): FedBuff paper, cisco-open/flame."""
    return 1.0 / np.sqrt(1.0 + tau)


def inv_1p_sqrt(tau):
    """s(tau) = 1 / (1 + sqrt(tau)): NVIDIA FLARE edge."""
    return 1.0 / (1.0 + np.sqrt(tau))


STALENESS = {"inv_sqrt_1p": inv_sqrt_1p, "inv_1p_sqrt": inv_1p_sqrt,
             "none": lambda tau: 1.0}
DEFAULT_STALENESS = "inv_sqrt_1p"


def fedbuff(updates, staleness_weight=DEFAULT_STALENESS):
    """FedBuff: (1/K) * sum_k s(tau_k) * delta_k over the K buffered updates.

    Args:
        staleness_weight: a key of STALENESS; the default is ``inv_sqrt_1p`` (paper form).
    """
    if staleness_weight not in STALENESS:
        raise EdgeRuntimeError("unknown staleness weight {!r} — choose one of {}".format(
            staleness_weight, ", ".join(sorted(STALENESS))))
    ups = _sorted(updates)
    s = STALENESS[staleness_weight]
    return _weighted_sum(ups, [float(s(u.staleness)) / len(ups) for u in ups])


def _stack(updates, name):
    return np.stack([np.asarray(u.tensors[name], np.float32) for u in updates])


def median(updates):
    """Coordinate-wise median (Yin et al. 2018)."""
    ups = _sorted(updates)
    return OrderedDict((n, np.median(_stack(ups, n), axis=0).astype(np.float32))
                       for n in _names(ups))


def trimmed_mean(updates, beta=0.1):
    """Coordinate-wise trimmed mean: drop floor(beta*n) largest and smallest, average the rest."""
    if not 0.0 <= beta < 0.5:
        raise EdgeRuntimeError("trimmed_mean beta must be in [0, 0.5), got {}".format(beta))
    ups = _sorted(updates)
    cut = int(np.floor(beta * len(ups)))
    out = OrderedDict()
    for n in _names(ups):
        st = np.sort(_stack(ups, n), axis=0)
        out[n] = st[cut:len(ups) - cut].astype(np.float64).mean(axis=0).astype(np.float32)
    return out


STRATEGIES = {"fedavg": fedavg, "fedbuff": fedbuff, "median": median,
              "trimmed_mean": trimmed_mean}

# strategy -> (num_examples, staleness, staleness weight name) -> (coefficient, weight): the
# mean is sum(coefficient * delta) / sum(weight). FedAvg: example-weighted; FedBuff:
# (1/K) sum s(tau) delta over the K buffered updates.
FOLD_WEIGHTS = {
    "fedavg": lambda n, tau, sw: (int(n), int(n)),
    "fedbuff": lambda n, tau, sw: (float(STALENESS[sw](tau)), 1),
}


def fold_weight(name, num_examples, staleness=0, staleness_weight=DEFAULT_STALENESS):
    """(coefficient, weight) of one update in the streaming fold of strategy ``name``."""
    return FOLD_WEIGHTS[name](num_examples, staleness, staleness_weight)


def update_norm(tensors):
    """L2 norm over all tensors of an update (float64)."""
    return float(np.sqrt(sum(float(np.sum(np.square(np.asarray(v, np.float64))))
                             for v in tensors.values())))


def clip_by_norm(tensors, max_norm):
    """Scale an update down so its global L2 norm is at most ``max_norm``."""
    norm = update_norm(tensors)
    if max_norm is None or norm <= max_norm or norm == 0:
        return tensors
    f = max_norm / norm
    return OrderedDict((n, (np.asarray(v, np.float32) * f).astype(np.float32))
                       for n, v in tensors.items())


def aggregate(name, updates, clip_norm=None, **options):
    """Run strategy ``name`` (a STRATEGIES key) after optional per-update norm clipping."""
    if name not in STRATEGIES:
        raise EdgeRuntimeError("unknown strategy {!r} — choose one of {}".format(
            name, ", ".join(sorted(STRATEGIES))))
    if clip_norm:
        updates = [u._replace(tensors=clip_by_norm(u.tensors, clip_norm)) for u in updates]
    return STRATEGIES[name](updates, **options)


def prox_penalty(params, global_params, mu):
    """FedProx client term (mu/2) * ||w - w_global||^2."""
    return 0.5 * mu * sum(float(np.sum(np.square(np.asarray(params[n], np.float64)
                                                  - global_params[n]))) for n in params)


def prox_gradient(params, global_params, mu):
    """Gradient of the FedProx term: mu * (w - w_global), per tensor."""
    return OrderedDict((n, (mu * (np.asarray(params[n], np.float32) - global_params[n]))
                        .astype(np.float32)) for n in params)
