"""Non-IID partitioners for federated clients: Dirichlet label skew and label shards."""

import numpy as np

from edgefl.errors import EdgeflError


def partition_dirichlet(labels: np.ndarray, n_clients: int, alpha: float, seed: int = 0, min_size: int = 1):
    """Split example indices over clients with per-class proportions drawn from Dirichlet(alpha).

    One ``default_rng(seed)``; for each class in sorted order: draw p ~ Dir(alpha·1), permute that
    class's indices, cut them at floor(cumsum(p)·n). Small alpha gives strong label skew; large
    alpha approaches IID. If a client ends up with fewer than `min_size` examples the whole draw is
    repeated with the same generator (bounded), so the first draw is the published definition.

    Returns:
        list of sorted index arrays, one per client, covering every example exactly once.
    """
    if n_clients < 1:
        raise EdgeflError(f"number of clients must be at least 1, got {n_clients}")
    if alpha <= 0:
        raise EdgeflError(f"Dirichlet alpha must be > 0, got {alpha} (0.5 is a common non-IID setting)")
    if n_clients * min_size > len(labels):
        raise EdgeflError(f"{len(labels)} examples cannot give {n_clients} clients {min_size} each"
                          " — use fewer clients")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    for _ in range(1000):
        parts = [[] for _ in range(n_clients)]
        for c in classes:
            p = rng.dirichlet(np.full(n_clients, alpha))
            idx = rng.permutation(np.flatnonzero(labels == c))
            cuts = np.floor(np.cumsum(p)[:-1] * len(idx)).astype(int)
            for client, chunk in enumerate(np.split(idx, cuts)):
                parts[client].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, np.int64)) for p in parts]
    raise EdgeflError(f"could not give every client {min_size} examples with alpha={alpha} — raise alpha")


def partition_shards(labels: np.ndarray, n_clients: int, shards_per_client: int = 2, seed: int = 0):
    """McMahan et al.'s pathological non-IID split: sort by label, cut into shards, deal shards out."""
    n_shards = n_clients * shards_per_client
    if n_clients < 1 or shards_per_client < 1 or n_shards > len(labels):
        raise EdgeflError(
            f"cannot cut {len(labels)} examples into {n_clients}×{shards_per_client} shards — use fewer"
        )
    rng = np.random.default_rng(seed)
    order = np.argsort(labels, kind="stable")
    shards = np.array_split(order, n_shards)
    deal = rng.permutation(n_shards).reshape(n_clients, shards_per_client)
    return [np.sort(np.concatenate([shards[s] for s in row])) for row in deal]
