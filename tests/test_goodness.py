"""Goodness functions: each against a hand-computed value, and the registry's defaults."""

from __future__ import annotations

import pytest
import torch

from ffbench.goodness import GOODNESS, meansq, neg_sumsq, sumsq, topk_meansq

ROWS = torch.tensor([[1.0, 2.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0], [-2.0, 1.0, 1.0, 1.0]])


def test_sumsq_adds_squares_per_row() -> None:
    assert sumsq(ROWS).tolist() == pytest.approx([14.0, 0.0, 7.0])


def test_meansq_averages_squares_per_row() -> None:
    assert meansq(ROWS).tolist() == pytest.approx([3.5, 0.0, 1.75])


def test_neg_sumsq_is_minus_the_sum_of_squares() -> None:
    assert neg_sumsq(ROWS).tolist() == pytest.approx([-14.0, 0.0, -7.0])


def test_topk_meansq_reads_only_the_most_active_units() -> None:
    # 20 units -> k = 2: rows whose two largest activities agree score the same,
    # whatever the other 18 units do
    quiet = torch.zeros(1, 20)
    quiet[0, :2] = torch.tensor([3.0, 4.0])
    busy = quiet.clone()
    busy[0, 2:] = 1.0
    assert topk_meansq(quiet).item() == pytest.approx((9 + 16) / 2)
    assert topk_meansq(busy).item() == pytest.approx((9 + 16) / 2)


def test_topk_meansq_uses_at_least_one_unit() -> None:
    assert topk_meansq(ROWS).tolist() == pytest.approx([9.0, 0.0, 4.0])


@pytest.mark.parametrize("name", sorted(GOODNESS))
def test_every_goodness_gives_one_value_per_row_and_a_finite_threshold(name: str) -> None:
    goodness = GOODNESS[name]
    h = torch.rand(5, 30, requires_grad=True)
    out = goodness.fn(h)
    assert out.shape == (5,)
    out.sum().backward()  # differentiable: layers learn through it
    assert h.grad is not None
    assert abs(goodness.default_threshold(30)) < float("inf")


def test_thresholds_match_their_goodness_scale() -> None:
    # sumsq's default is meansq's times the width; neg_sumsq mirrors sumsq
    meansq_threshold = GOODNESS["meansq"].default_threshold(2000)
    assert GOODNESS["sumsq"].default_threshold(2000) == 2000 * meansq_threshold
    assert GOODNESS["neg_sumsq"].default_threshold(500) == -GOODNESS["sumsq"].default_threshold(500)
