"""Data: loaders for the shipped sets and user files, a seeded split, non-IID partitioners."""

from edgefl.data.arrays import ArrayData, load_image_folder, load_npz, normalize
from edgefl.data.hsi import SHIPPED_SCENES, HSIScene, load_hsi_scene
from edgefl.data.idx_folder import FASHION_PREPROCESSING, load_fashion_mnist, load_idx_split
from edgefl.data.mnist import MNIST_PREPROCESSING, load_mnist
from edgefl.data.partition import partition_dirichlet, partition_shards
from edgefl.data.registry import DATASETS, Split, load_dataset, load_split, split_arguments
from edgefl.data.split import train_test_split

__all__ = [
    "ArrayData",
    "DATASETS",
    "FASHION_PREPROCESSING",
    "HSIScene",
    "MNIST_PREPROCESSING",
    "SHIPPED_SCENES",
    "Split",
    "load_dataset",
    "load_fashion_mnist",
    "load_hsi_scene",
    "load_idx_split",
    "load_image_folder",
    "load_mnist",
    "load_npz",
    "load_split",
    "normalize",
    "partition_dirichlet",
    "partition_shards",
    "split_arguments",
    "train_test_split",
]
