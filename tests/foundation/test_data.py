import gzip

import numpy as np
import pytest

from edgefl.data import (SHIPPED_SCENES, ArrayData, load_dataset, load_hsi_scene, load_mnist, load_npz,
                         normalize, partition_dirichlet, partition_shards, train_test_split)
from edgefl.data.mnist import read_idx
from edgefl.errors import EdgeflError


def test_shipped_mnist_is_the_official_test_split():
    d = load_mnist()
    assert d.x.shape == (10000, 1, 28, 28) and d.x.dtype == np.float32
    assert 0.0 <= d.x.min() and d.x.max() == 1.0
    assert np.bincount(d.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_split_is_seeded_stratified_and_disjoint():
    d = load_mnist()
    tr, te = train_test_split(d, 0.2, seed=0)
    tr2, te2 = train_test_split(d, 0.2, seed=0)
    _, te3 = train_test_split(d, 0.2, seed=1)
    assert len(tr) == 8000 and len(te) == 2000
    assert np.array_equal(te.y, te2.y) and np.array_equal(te.x, te2.x)
    assert not np.array_equal(te.x, te3.x)
    assert abs(np.bincount(te.y)[1] - 227) <= 1  # 20% of 1135
    assert not (set(map(bytes, te.x[:200])) & set(map(bytes, tr.x)))


def test_dirichlet_partition_covers_everything_and_skews_labels():
    y = load_mnist().y
    parts = partition_dirichlet(y, 10, alpha=0.5, seed=0)
    allidx = np.concatenate(parts)
    assert len(allidx) == len(y) and len(np.unique(allidx)) == len(y)
    hist = np.stack([np.bincount(y[p], minlength=10) / len(p) for p in parts])
    iid = partition_dirichlet(y, 10, alpha=1000.0, seed=0)
    hist_iid = np.stack([np.bincount(y[p], minlength=10) / len(p) for p in iid])
    assert hist.std(0).mean() > 3 * hist_iid.std(0).mean()
    assert [len(p) for p in partition_dirichlet(y, 10, 0.5, seed=0)] == [len(p) for p in parts]


def test_shard_partition_gives_few_labels_per_client():
    y = load_mnist().y
    parts = partition_shards(y, 20, shards_per_client=2, seed=0)
    assert sum(len(p) for p in parts) == len(y)
    assert max(len(np.unique(y[p])) for p in parts) <= 4


@pytest.mark.parametrize("name,shape,anomalies", [
    ("abu-urban-2", (100, 100, 198), 155), ("abu-beach-4", (100, 100, 102), 68),
    ("hydice", (100, 80, 162), 19), ("pavia", (105, 120, 102), 43)])
def test_shipped_hsi_scenes(name, shape, anomalies):
    s = load_hsi_scene(name)
    assert s.cube.shape == shape and s.cube.dtype == np.float32
    assert int(s.gt.sum()) == anomalies
    assert set(SHIPPED_SCENES) == {"abu-urban-2", "abu-beach-4", "hydice", "pavia"}


def test_hsi_npy_and_validation(tmp_path):
    cube = np.random.default_rng(0).random((6, 5, 8)).astype(np.float32)
    gt = np.zeros((6, 5), np.uint8)
    gt[2, 2] = 1
    np.save(tmp_path / "c.npy", cube)
    np.save(tmp_path / "g.npy", gt)
    s = load_hsi_scene(tmp_path / "c.npy", gt_path=tmp_path / "g.npy")
    assert s.gt.sum() == 1 and np.array_equal(s.cube, cube)
    np.save(tmp_path / "g2.npy", np.zeros((5, 6), np.uint8))
    with pytest.raises(EdgeflError, match="ground-truth map is"):
        load_hsi_scene(tmp_path / "c.npy", gt_path=tmp_path / "g2.npy")
    bad = cube.copy()
    bad[0, 0, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(EdgeflError, match=r"band\(s\) \[3\] contain NaN"):
        load_hsi_scene(tmp_path / "nan.npy")
    np.save(tmp_path / "thin.npy", cube[..., :2])
    with pytest.raises(EdgeflError, match="only 2 bands"):
        load_hsi_scene(tmp_path / "thin.npy")
    with pytest.raises(EdgeflError, match="not found"):
        load_hsi_scene(tmp_path / "missing.mat")


def test_npz_loader_and_errors(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (7, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(7) % 2)
    d = load_npz(tmp_path / "d.npz")
    assert d.x.shape == (7, 3, 8, 8) and d.x.max() <= 1.0 and d.y.tolist() == [0, 1, 0, 1, 0, 1, 0]
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    with pytest.raises(EdgeflError):
        load_npz(tmp_path / "o.npz")
    with pytest.raises(EdgeflError, match="no array 'x'"):
        np.savez(tmp_path / "k.npz", images=x, y=np.zeros(7))
        load_npz(tmp_path / "k.npz")


def test_image_folder_loader(tmp_path):
    from matplotlib import image as mpimg

    from edgefl.data import load_image_folder

    rng = np.random.default_rng(0)
    for cls in ("cloud", "ship"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            mpimg.imsave(tmp_path / cls / f"{i}.png", rng.random((6, 6, 3)))
    d = load_image_folder(tmp_path)
    assert d.x.shape == (6, 3, 6, 6) and d.labels == ["cloud", "ship"] and d.y.tolist() == [0, 0, 0, 1, 1, 1]
    data, prep = load_dataset(str(tmp_path))
    assert len(data) == 6 and len(prep["mean"]) == 3


def test_truncated_idx_is_refused(tmp_path):
    raw = gzip.open(load_mnist.__globals__["SHIPPED_DIR"] / "t10k-labels-idx1-ubyte.gz").read()
    (tmp_path / "l.gz").write_bytes(gzip.compress(raw[:-5]))
    with pytest.raises(EdgeflError, match="truncated"):
        read_idx(tmp_path / "l.gz")
    (tmp_path / "x").write_bytes(b"\x00" * 20)
    with pytest.raises(EdgeflError, match="magic"):
        read_idx(tmp_path / "x")


def test_normalize_matches_hand_computation():
    x = np.full((2, 1, 2, 2), 0.5, np.float32)
    out = normalize(x, {"mean": [0.25], "std": [0.5]})
    assert np.allclose(out, 0.5)
    assert ArrayData(x, np.zeros(2, np.int64)).num_classes == 1
