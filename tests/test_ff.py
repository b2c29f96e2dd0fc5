from __future__ import annotations

import torch

from ffbench.algorithms.resolve import resolved
from ffbench.cell.built import Built, build, load_dataset
from ffbench.settings.cell import CellSpec


def built_ff(**fields: object) -> Built:
    spec = resolved(CellSpec(**({"algorithm": "ff", "n_layers": 3, "hidden": 64, "batch_size": 256}
                       | fields)))  # type: ignore[arg-type]
    return build(spec, load_dataset(spec), torch.device("cpu"))


def test_every_layer_loss_falls_on_synthetic_data() -> None:
    built = built_ff()
    losses = torch.stack([built.algorithm.train_step(*built.train.next()) for _ in range(40)])
    first, last = losses[:5].mean(dim=0), losses[-5:].mean(dim=0)  # (n_layers,)
    assert losses.shape == (40, 3)
    assert (last < 0.8 * first).all(), (first, last)


def test_chunked_prediction_equals_unchunked() -> None:
    whole, chunked = built_ff(eval_chunk=0), built_ff(eval_chunk=70)  # 7 images per chunk
    for built in (whole, chunked):
        for _ in range(5):
            built.algorithm.train_step(*built.train.next())
    x, _ = whole.eval.next()
    assert torch.equal(whole.algorithm.predict(x), chunked.algorithm.predict(x))


def test_chunking_bounds_replicated_rows_alive() -> None:
    from ffbench.cell.built import warm_up
    from ffbench.cell.run import memory_pass

    peaks = {}
    for chunk in (0, 640):
        built = built_ff(eval_chunk=chunk)
        warm_up(built, 1)
        _, evaluation = memory_pass(built)
        peaks[chunk] = evaluation.split["eval_replication"]
    assert peaks[0] == 256 * 10 * 784 * 4  # every image x 10 labels, float32
    assert peaks[640] == 64 * 10 * 784 * 4  # 64 images per chunk
