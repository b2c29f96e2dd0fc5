"""Analytic FLOPs per train step and eval batch against torch's own FlopCounterMode, for every
registered algorithm (registering one is enough to put it under this test), with the linear
read-out too where it has one."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ffbench.algorithms.resolve import resolved
from ffbench.cell.built import build, load_dataset, warm_up
from ffbench.settings.cell import CellSpec

from helpers import algorithm_variants


@pytest.mark.parametrize(("algorithm", "options"), algorithm_variants())
def test_analytic_flops_match_flop_counter(algorithm: str, options: dict[str, Any]) -> None:
    spec = resolved(CellSpec(algorithm, n_layers=3, hidden=48, batch_size=32, eval_batch_size=16,
                    warmup_steps=1, options=options))
    built = build(spec, load_dataset(spec), torch.device("cpu"))
    warm_up(built, 1)
    x, y = built.train.next()
    with FlopCounterMode(display=False) as train_counter:
        built.algorithm.train_step(x, y)
    x_eval, _ = built.eval.next()
    with FlopCounterMode(display=False) as eval_counter:
        built.algorithm.predict(x_eval)
    assert built.algorithm.train_flops_per_step() == train_counter.get_total_flops()
    assert built.algorithm.eval_flops_per_batch() == eval_counter.get_total_flops()
