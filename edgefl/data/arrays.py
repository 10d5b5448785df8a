"""In-memory labelled arrays, `.npz` files and image folders."""

import dataclasses
from pathlib import Path

import numpy as np

from edgefl.errors import EdgeflError


@dataclasses.dataclass
class ArrayData:
    """Images x (N×C×H×W float32 in [0, 1], not normalised) with integer labels y (N,)."""

    x: np.ndarray
    y: np.ndarray
    labels: list = None

    def __post_init__(self):
        if len(self.x) != len(self.y):
            raise EdgeflError(f"data has {len(self.x)} inputs but {len(self.y)} labels — they must match")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index) -> "ArrayData":
        return ArrayData(self.x[index], self.y[index], self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.labels) if self.labels else int(self.y.max()) + 1


def normalize(x: np.ndarray, preprocessing: dict) -> np.ndarray:
    """Apply the per-channel (x - mean) / std recorded in a checkpoint's or bundle's preprocessing."""
    if not preprocessing:
        return x.astype(np.float32, copy=False)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = np.asarray(preprocessing.get("mean", [0.0]), np.float32).reshape(shape)
    std = np.asarray(preprocessing.get("std", [1.0]), np.float32).reshape(shape)
    return ((x - mean) / std).astype(np.float32)


def _as_nchw(x: np.ndarray) -> np.ndarray:
    """Accept N×H×W, N×H×W×C (C ≤ 4) or N×C×H×W; scale integer images to [0, 1]."""
    scale = 255.0 if np.issubdtype(x.dtype, np.integer) else 1.0
    x = x.astype(np.float32) / scale
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[-1] <= 4 and x.shape[1] > 4:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if x.ndim == 4:
        return x
    raise EdgeflError(f"images must be N×H×W, N×H×W×C or N×C×H×W, got shape {x.shape} — reshape the array")


def load_npz(path, x_key: str = "x", y_key: str = "y") -> ArrayData:
    """Load an `.npz` with image and label arrays (never unpickles object arrays)."""
    path = Path(path)
    if not path.is_file():
        raise EdgeflError(f"data file {path} not found — check the path")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in (x_key, y_key) if k not in z.files]
            if missing:
                raise EdgeflError(
                    f"{path.name} has no array {missing[0]!r} (it has {z.files}) — pass --x-key/--y-key"
                )
            x, y = z[x_key], z[y_key]
    except (ValueError, OSError) as e:
        raise EdgeflError(f"{path.name} is not a readable .npz file ({e})"
                          " — re-create it with numpy.savez") from None
    return ArrayData(_as_nchw(x), y.astype(np.int64).reshape(-1))


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def load_image_folder(root, size=None, grayscale: bool = False) -> ArrayData:
    """Load `root/<class>/<image>` folders; class names sorted give the label indices."""
    from matplotlib import image as mpimg  # imported here: only this loader needs it

    root = Path(root)
    if not root.is_dir():
        raise EdgeflError(f"image folder {root} not found — point at a folder of class sub-folders")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise EdgeflError(f"{root} has no class sub-folders — lay it out as {root}/<class>/<image>.png")
    xs, ys = [], []
    for label, name in enumerate(classes):
        for f in sorted((root / name).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            img = np.asarray(mpimg.imread(f))
            if img.dtype != np.uint8:
                img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
            if img.ndim == 3 and grayscale:
                img = img[..., :3].mean(-1).astype(np.uint8)
            if img.ndim == 3:
                img = img[..., :3]
            xs.append(img)
            ys.append(label)
    if not xs:
        raise EdgeflError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) — add some")
    shapes = {x.shape for x in xs}
    if len(shapes) > 1:
        raise EdgeflError(f"images in {root} differ in size {sorted(shapes)[:3]} — resize them to one size")
    return ArrayData(_as_nchw(np.stack(xs)), np.asarray(ys, np.int64), classes)
