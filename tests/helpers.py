"""Test helpers: MNIST-format files, every algorithm and its variants as parameters (the
command line is run through conftest's `cli` fixture and `ffbench_process`)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch

from ffbench.algorithms import registry


def write_idx(path: Path, array: torch.Tensor) -> None:
    """An IDX file as MNIST ships it (uint8 payload): the format torchvision reads."""
    dims = array.shape
    header = struct.pack(">HBB", 0, 0x08, len(dims)) + struct.pack(f">{len(dims)}I", *dims)
    path.write_bytes(header + array.to(torch.uint8).numpy().tobytes())


def make_mnist_dir(root: Path, train_size: int = 64, test_size: int = 32) -> Path:
    """A tiny MNIST in torchvision's layout: ROOT/MNIST/raw/{train,t10k}-{images,labels}-..."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    for prefix, n in (("train", train_size), ("t10k", test_size)):
        images = torch.randint(0, 256, (n, 28, 28), generator=gen)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", torch.randint(0, 10, (n,), generator=gen))
    return root


LINEAR_READOUT = {"readout": "linear"}


def algorithm_variants() -> list[object]:
    """pytest params (algorithm, options): every registered algorithm as it is, and with the
    linear read-out where it has a `readout` option (the FF family)."""
    names = registry.names()
    return [pytest.param(name, {}, id=name) for name in names] + [
        pytest.param(name, LINEAR_READOUT, id=f"{name}-readout=linear")
        for name in names if "readout" in registry.load(name).options
    ]
