from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ffbench import data
from ffbench.settings.cell import CellSpec

from helpers import make_mnist_dir


def test_negatives_never_carry_the_true_label() -> None:
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (200_000,))
    wrong = data.wrong_labels(labels)
    assert not (wrong == labels).any()
    # uniform over the 9 other classes: each offset 1..9 about 1/9 of the time
    counts = torch.bincount((wrong - labels) % 10, minlength=10)
    assert counts[0] == 0
    assert (counts[1:].float() / len(labels) - 1 / 9).abs().max() < 0.005


def test_positive_and_negative_rows_embed_true_then_wrong_labels() -> None:
    x = torch.rand(50, 784)
    y = torch.randint(0, 10, (50,))
    rows = data.positive_and_negative(x, y)
    assert rows.shape == (100, 784)
    assert torch.equal(rows[:, 10:], x.repeat(2, 1)[:, 10:])  # pixels untouched
    assert torch.equal(rows[:, :10].sum(dim=1), torch.ones(100))  # exactly one-hot
    assert torch.equal(rows[:50, :10].argmax(dim=1), y)
    assert not (rows[50:, :10].argmax(dim=1) == y).any()


def test_replicate_per_class_is_image_major() -> None:
    x = torch.rand(3, 784)
    rows = data.replicate_per_class(x)
    assert rows.shape == (30, 784)
    assert torch.equal(rows[:, :10].argmax(dim=1), torch.arange(10).repeat(3))
    assert torch.equal(rows[13, 10:], x[1, 10:])


def test_synthetic_is_deterministic_and_mnist_shaped() -> None:
    spec = CellSpec("bp", n_layers=1, hidden=8, batch_size=4)
    a, b = data.load(spec), data.load(spec)
    assert torch.equal(a.train_images, b.train_images)
    assert a.train_images.shape == (60_000, 784) and a.train_images.dtype == torch.uint8
    assert not a.real


@pytest.mark.slow
def test_mnist_5k_is_real_digits_with_a_fixed_stratified_split() -> None:
    ds = data.load(CellSpec("bp", n_layers=1, hidden=8, batch_size=4, dataset="mnist-5k"))
    assert ds.real
    assert (len(ds.train_labels), len(ds.test_labels)) == (4000, 1000)
    assert torch.equal(torch.bincount(ds.test_labels), torch.full((10,), 100))
    assert ds.train_images.max() == 255


def test_mnist_reads_torchvision_files_from_data_dir(tmp_path: Path) -> None:
    root = make_mnist_dir(tmp_path / "data", train_size=64, test_size=32)
    ds = data.load(CellSpec("bp", n_layers=1, hidden=8, batch_size=4, dataset="mnist",
                            data_dir=str(root)))
    assert ds.train_images.shape == (64, 784) and ds.test_labels.shape == (32,)


def test_batch_stream_covers_an_epoch_without_repeats() -> None:
    images = torch.arange(100, dtype=torch.uint8).unsqueeze(1).repeat(1, 784)
    stream = data.BatchStream(images, torch.arange(100), 25, torch.device("cpu"),
                              torch.float32, seed=0)
    seen = torch.cat([stream.next()[1] for _ in range(stream.steps_per_epoch)])
    assert torch.equal(seen.sort().values, torch.arange(100))
