"""PIC-PQ step 4: learn the per-layer deformation (a_l, b_l) by regularized (aging) evolution.

Candidate = arrays a[L] (> 0, log-normal) and b[L]. Initial population: a = exp(N(0, 1)),
b ~ N(0, std(FP_l)), with the identity candidate (a = 1, b = 0) as the last initial member (the
official code inserts it at index 63 of 64). Each generation: sample ``sample`` random members, the
lowest-loss one is the parent; mutate int(mutate_fraction · L) (≥ 1) random layers with
a ← a · exp(N(0, σ · step)), b ← b + N(0, std(FP_l)), step = 1 − g / (1.25 · G); the child replaces
the oldest member. The best candidate ever evaluated is returned — so its fitness is never worse than
the identity's.

Fitness (``short_finetune_loss``): prune a copy of the FP model with I = a·FP + b, fine-tune
``steps`` SGD steps (lr 0.01, momentum 0.9, wd 5e-4), return the mean cross-entropy on the held-out
validation split (lower is better).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from edgefl.progress import NullProgress


@dataclass
class Candidate:
    a: np.ndarray
    b: np.ndarray
    loss: float = float("nan")

    def to_dict(self, names) -> dict:
        return {n: [float(a), float(b)] for n, a, b in zip(names, self.a, self.b)}


@dataclass
class SearchResult:
    best: Candidate
    identity_loss: float
    history: list[float] = field(default_factory=list)  # loss of every evaluated candidate, in order


def evolve(
    fitness,
    fp_std: np.ndarray,
    population: int = 8,
    sample: int = 3,
    generations: int = 8,
    sigma: float = 1.0,
    mutate_fraction: float = 0.1,
    seed: int = 0,
    progress=None,
) -> SearchResult:
    """Aging evolution over (a, b); ``fitness(a, b) -> loss``.

    Args:
        fitness: callable returning the validation loss of a candidate (lower is better).
        fp_std: per-layer std of the filter property (scale of the b initialisation and mutation).
        population, sample, generations: aging-evolution sizes (paper: 64, 16, 400).
        sigma: log-scale mutation of a.
        mutate_fraction: fraction of layers mutated per child (at least one).
        seed: RNG seed.
    Returns:
        SearchResult with the best candidate, the identity candidate's loss and the loss history.
    """
    if population < 1 or sample < 1 or generations < 0:
        raise ValueError("population and sample must be >= 1 and generations >= 0")
    rng = np.random.default_rng(seed)
    progress = progress or NullProgress()
    n = len(fp_std)
    std = np.maximum(np.asarray(fp_std, dtype=np.float64), 1e-6)
    task = progress.task("PIC-PQ search", population + generations)
    pop: deque[Candidate] = deque()
    history: list[float] = []
    best = None
    identity_loss = float("nan")

    def evaluate(c: Candidate) -> Candidate:
        nonlocal best
        c.loss = float(fitness(c.a, c.b))
        history.append(c.loss)
        if best is None or c.loss < best.loss:
            best = c
        task.advance(1, loss=c.loss, best=best.loss)
        return c

    for i in range(population):
        if i == population - 1:
            c = evaluate(Candidate(np.ones(n), np.zeros(n)))
            identity_loss = c.loss
        else:
            c = evaluate(Candidate(np.exp(rng.normal(0, 1, n)), rng.normal(0, std)))
        pop.append(c)
    k = max(1, int(mutate_fraction * n))
    for g in range(generations):
        members = [pop[i] for i in rng.choice(len(pop), size=min(sample, len(pop)), replace=False)]
        parent = min(members, key=lambda c: c.loss)
        step = 1 - g / (1.25 * generations)
        a, b = parent.a.copy(), parent.b.copy()
        for layer in rng.choice(n, size=k, replace=False):
            a[layer] *= np.exp(rng.normal(0, sigma * step))
            b[layer] += rng.normal(0, std[layer])
        pop.append(evaluate(Candidate(a, b)))
        pop.popleft()  # aging: the oldest member dies
    task.close()
    return SearchResult(best, identity_loss, history)


def sgd_steps(model, x, y, steps: int, batch_size: int = 64, lr: float = 0.01, seed: int = 0) -> None:
    """``steps`` SGD steps (momentum 0.9, wd 5e-4) on ``x``/``y`` with seeded random batches."""
    import torch
    import torch.nn.functional as F

    if steps <= 0:
        return
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (min(batch_size, x.shape[0]),), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def mean_loss(model, x, y, batch_size: int = 500) -> float:
    """Mean cross-entropy of ``model`` (eval mode) on tensors ``x``/``y``."""
    import torch
    import torch.nn.functional as F

    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            total += F.cross_entropy(
                model(x[i : i + batch_size]), y[i : i + batch_size], reduction="sum"
            ).item()
    return total / max(1, x.shape[0])
