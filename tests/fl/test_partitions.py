"""Partitions as data: `edgefl data partition`, partition files, a user's split used as given."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgefl.data import load_mnist, load_split
from edgefl.data.partition_file import client_share, dirichlet_partition, read_partition, write_partition
from edgefl.errors import EdgeflError

EDGEFL = str(Path(sys.executable).with_name("edgefl"))
# issue 17's published setting: default_rng(0).permutation of the shipped 10,000, the first 8,000 train
PUBLISHED_SIZES = [901, 505, 639, 1323, 1169, 428, 994, 807, 466, 768]


def partition_cli(*args):
    p = subprocess.run([EDGEFL, "data", "partition", *map(str, args), "--json"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture(scope="module")
def published_train(tmp_path_factory):
    d = load_mnist()
    order = np.random.default_rng(0).permutation(len(d))
    path = tmp_path_factory.mktemp("pub") / "train.npz"
    np.savez(path, x=(d.x[order[:8000], 0] * 255).round().astype(np.uint8), y=d.y[order[:8000]])
    return path


def test_the_published_dirichlet_partition_comes_out_of_the_cli(published_train, tmp_path):
    got = partition_cli("--data", published_train, "--no-split", "--alpha", 0.5, "--clients", 10,
                        "--seed", 0, "--out", tmp_path / "parts.json")
    sizes = [c["examples"] for c in got["clients"].values()]
    assert sizes == PUBLISHED_SIZES and got["split"] == {"kind": "none", "train": 8000, "test": 0}
    y = np.load(published_train)["y"]
    counts = np.array([c["class_counts"] for c in got["clients"].values()])
    assert counts.sum(0).tolist() == np.bincount(y).tolist()  # every example once, by class
    record = read_partition(tmp_path / "parts.json")
    for cid, idx in record["clients"].items():
        assert np.bincount(y[idx], minlength=10).tolist() == got["clients"][cid]["class_counts"]


def test_partition_output_is_deterministic_for_a_seed(tmp_path):
    runs = [partition_cli("--clients", 5, "--seed", s, "--out", tmp_path / f"p{i}.json")
            for i, s in enumerate((3, 3, 4))]
    assert runs[0]["clients"] == runs[1]["clients"]
    assert (tmp_path / "p0.json").read_bytes() == (tmp_path / "p1.json").read_bytes()
    assert runs[0]["clients"] != runs[2]["clients"]
    assert runs[0]["split"]["kind"] == "stratified" and runs[0]["examples"] == 8000


def test_a_client_gets_its_indices_and_other_data_is_refused(tmp_path):
    train = load_split("mnist").train
    record = dirichlet_partition(train.y, 4, 0.5, 1, data="mnist", split={"kind": "stratified"})
    path = write_partition(tmp_path / "parts.json", record)
    share = client_share(path, "client-002", train)
    idx = record["clients"]["client-002"]
    assert len(share) == len(idx) and np.array_equal(share.x, train.x[idx])
    with pytest.raises(EdgeflError, match="client-009.*not in"):
        client_share(path, "client-009", train)
    with pytest.raises(EdgeflError, match="other examples"):
        client_share(path, "client-002", load_split("mnist", seed=1).train)  # another split: same size


def test_a_folder_of_client_npz_files_is_the_other_form(tmp_path):
    train = load_split("mnist").train.subset(np.arange(300))
    record = dirichlet_partition(train.y, 3, 0.5, 0, data="x", split={})
    from edgefl.data.partition_file import write_client_npz

    write_client_npz(tmp_path / "clients", record, train)
    share = client_share(tmp_path / "clients", "client-001", None)
    assert np.allclose(share.x, train.x[record["clients"]["client-001"]])
    with pytest.raises(EdgeflError, match="no client-007.npz"):
        client_share(tmp_path / "clients", "client-007", None)


def test_bad_partition_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "edgefl.partition", "version": 1, "examples": 5,
                               "clients": {"a": [0, 7]}}))
    with pytest.raises(EdgeflError, match="0..4"):
        read_partition(bad)
    p = subprocess.run([EDGEFL, "agent", "--client-id", "a", "--checkpoint", str(tmp_path),
                        "--partition-file", str(bad)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "0..4" in p.stderr


def test_a_train_test_pair_in_a_folder_is_used_as_given(tmp_path):
    rng = np.random.default_rng(0)
    for part, n in (("train", 30), ("test", 12)):
        np.savez(tmp_path / f"{part}.npz", x=rng.integers(0, 255, (n, 6, 6), dtype=np.uint8),
                 y=np.arange(n) % 3)
    split = load_split(str(tmp_path))
    assert split.split == {"kind": "official", "train": 30, "test": 12}
    assert np.array_equal(split.test.y, np.arange(12) % 3)
    whole = load_split(str(tmp_path / "train.npz"), no_split=True)
    assert len(whole.train) == 30 and len(whole.test) == 0


def test_partition_ids_are_the_ids_federation_init_gives():
    from edgefl.data.partition_file import client_ids
    from edgefl.security.federation import client_ids as federation_ids

    assert client_ids(6) == federation_ids(6) == [f"client-00{i}" for i in range(6)]
    assert client_ids(10001)[-1] == "client-10000" and client_ids(10001)[0] == "client-00000"
