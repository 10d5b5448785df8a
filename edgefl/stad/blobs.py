"""Training data for STAD: anomaly-free cubes, random crops with augmentation, pseudo-anomaly blobs.

Pure numpy, driven by an explicit ``np.random.Generator``.

* ``anomaly_free`` — without HAD100, the anomaly-free training images are the shipped scenes with their
  ground-truth anomalies (dilated by one pixel) in-painted by the mean background spectrum around them
  (spec §5.3, "shared scenes with GT pixels masked out").
* ``pseudo_anomaly_mask`` — spec §1.2: 1–n random 4-connected blobs of 3–20 pixels, each seeded in a
  different 9×9 cell at a random offset, cropped to the crop size. The spec's 64×64 crops hold up to 32
  blobs; smaller crops get proportionally fewer (``max_targets_for``).
* ``sample_crops`` — random position, rotation by 0/90/180/270° and horizontal/vertical flips.
"""

import math

import numpy as np

CELL = 9
BLOB_SIZES = (3, 20)
_STEPS = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])


def anomaly_free(x: np.ndarray, gt, radius: int = 3) -> np.ndarray:
    """C×H×W cube with ground-truth pixels (dilated by 1) replaced by their local background mean."""
    if gt is None or not np.any(gt):
        return x.copy()
    mask = np.asarray(gt).astype(bool)
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    out = x.copy()
    h, w = grown.shape
    background_mean = x[:, ~grown].mean(axis=1)
    for i, j in zip(*np.nonzero(grown)):
        for r in (radius, 2 * radius, 4 * radius):
            win = (slice(max(i - r, 0), i + r + 1), slice(max(j - r, 0), j + r + 1))
            keep = ~grown[win]
            if keep.any():
                out[:, i, j] = x[:, win[0], win[1]][:, keep].mean(axis=1)
                break
        else:
            out[:, i, j] = background_mean
    return out


def max_targets_for(size: int) -> int:
    return max(1, int(round(32 * (size / 64.0) ** 2)))


def _grow_blob(rng: np.random.Generator, seed, n_pixels: int, limit: int) -> set:
    blob = [tuple(seed)]
    members = {tuple(seed)}
    while len(blob) < n_pixels:
        y, x = blob[rng.integers(len(blob))]
        dy, dx = _STEPS[rng.integers(4)]
        p = (int(y + dy), int(x + dx))
        if 0 <= p[0] < limit and 0 <= p[1] < limit and p not in members:
            members.add(p)
            blob.append(p)
    return members


def pseudo_anomaly_mask(rng: np.random.Generator, size: int, max_targets=None) -> np.ndarray:
    """size×size float32 mask, 1 on random small blobs (spec §1.2)."""
    cells = math.ceil(size / CELL)
    limit = cells * CELL
    max_targets = max_targets or max_targets_for(size)
    n = int(rng.integers(1, min(max_targets, cells * cells) + 1))
    canvas = np.zeros((limit, limit), np.float32)
    for cell in rng.choice(cells * cells, size=n, replace=False):
        cy, cx = divmod(int(cell), cells)
        seed = (cy * CELL + rng.integers(CELL), cx * CELL + rng.integers(CELL))
        for y, x in _grow_blob(rng, seed, int(rng.integers(BLOB_SIZES[0], BLOB_SIZES[1] + 1)), limit):
            canvas[y, x] = 1.0
    return canvas[:size, :size]


def augment(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random rotation by k·90° and random horizontal/vertical flips of a C×S×S crop."""
    crop = np.rot90(crop, k=int(rng.integers(4)), axes=(1, 2))
    if rng.random() < 0.5:
        crop = crop[:, :, ::-1]
    if rng.random() < 0.5:
        crop = crop[:, ::-1, :]
    return np.ascontiguousarray(crop)


def sample_crops(cubes: list, rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """n augmented size×size crops, each from a uniformly chosen cube at a random position → n×C×S×S."""
    out = []
    for _ in range(n):
        x = cubes[int(rng.integers(len(cubes)))]
        i = int(rng.integers(x.shape[1] - size + 1))
        j = int(rng.integers(x.shape[2] - size + 1))
        out.append(augment(x[:, i : i + size, j : j + size], rng))
    return np.stack(out).astype(np.float32)
