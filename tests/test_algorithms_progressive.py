"""Progressive FF (ff-progressive) and its host-offloading form (ff-layerwise)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ffbench.algorithms.ff_layerwise import LayerwiseFF
from ffbench.algorithms.ff_progressive import ProgressiveFF
from ffbench.algorithms.resolve import resolved
from ffbench.cell.run import run_cell
from ffbench.data import BatchStream, embed_labels_, positive_and_negative
from ffbench.settings.cell import MNIST_PIXELS, CellSpec

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
N_IMAGES = 96


def stream(batch_size: int = 16) -> BatchStream:
    gen = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (N_IMAGES, MNIST_PIXELS), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, 10, (N_IMAGES,), generator=gen)
    return BatchStream(images, labels, batch_size, CPU, torch.float32, seed=0)


def build(cls: type[ProgressiveFF], algorithm: str, **fields: object) -> ProgressiveFF:
    defaults: dict[str, object] = {"n_layers": 3, "hidden": 32, "batch_size": 16}
    spec = CellSpec(algorithm=algorithm, **{**defaults, **fields})  # type: ignore[arg-type]
    torch.manual_seed(0)
    return cls(resolved(spec), CPU)


class Recording(ProgressiveFF):
    """ff-progressive that notes which layer each update trains."""

    trained: list[int]

    def train_layer(self, index: int, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.trained = [*getattr(self, "trained", []), index]
        return super().train_layer(index, h)


def test_each_layer_gets_all_its_epochs_before_the_next_starts() -> None:
    ff = build(Recording, "ff-progressive")
    ff.fit(stream(), epochs=2)
    steps_per_layer = 2 * (N_IMAGES // 16)
    assert ff.trained == [0] * steps_per_layer + [1] * steps_per_layer + [2] * steps_per_layer


def test_finished_layers_drop_their_optimizer_state() -> None:
    ff = build(ProgressiveFF, "ff-progressive")
    ff.fit(stream(), epochs=1)
    assert [len(opt.state) for opt in ff.optimizers] == [0, 0, 2]  # weight and bias of the last


def test_cache_holds_each_images_rows_through_the_frozen_layers() -> None:
    ff = build(ProgressiveFF, "ff-progressive", options={"cache": True})
    data = stream()
    ff.use_training_set(data)
    ff.advance()  # layer 1 is trained next: the cache holds layer 0's outputs
    x = data.images.float() / 255
    assert ff.cache is not None and ff.cache.shape == (2 * N_IMAGES, 32)
    with torch.no_grad():
        positive = ff.layers[0](embed_labels_(x.clone(), data.labels))
        torch.testing.assert_close(ff.cache[:N_IMAGES], positive)
        ff.advance()  # in place: now layer 1's outputs of the same rows
        torch.testing.assert_close(ff.cache[:N_IMAGES], ff.layers[1](positive))


def test_cached_negatives_never_carry_the_true_label() -> None:
    # the cache's negative rows are built by positive_and_negative, as every FF variant's are
    labels = torch.randint(0, 10, (20_000,))
    rows = positive_and_negative(torch.rand(20_000, MNIST_PIXELS), labels)
    embedded = rows[:, :10].argmax(dim=1)
    assert torch.equal(embedded[:20_000], labels)
    assert not (embedded[20_000:] == labels).any()


def test_layerwise_trains_exactly_like_progressive_with_a_cache() -> None:
    cached = build(ProgressiveFF, "ff-progressive", options={"cache": True})
    layerwise = build(LayerwiseFF, "ff-layerwise")
    for ff in (cached, layerwise):
        torch.manual_seed(1)  # the same negatives and cache order for both
        ff.fit(stream(), epochs=2)
    for a, b in zip(cached.model.parameters(), layerwise.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    x = torch.rand(5, MNIST_PIXELS)
    assert torch.equal(cached.predict(x), layerwise.predict(x))


def test_layerwise_keeps_only_the_layer_in_training_on_the_device() -> None:
    spec = CellSpec(algorithm="ff-layerwise", n_layers=3, hidden=32, batch_size=16, device="meta")
    torch.manual_seed(0)
    ff = LayerwiseFF(resolved(spec), torch.device("meta"))
    ff.use_training_set(stream())
    for current in range(3):
        on_device = [p.is_meta for layer in ff.layers for p in layer.parameters()]
        assert on_device == [index == current for index in range(3) for _ in range(2)]
        assert ff.cache is None or ff.cache.device == CPU
        if current < 2:
            ff.advance()


def test_the_cache_is_the_largest_memory_category_at_hidden_256() -> None:
    row = run_cell(CellSpec(
        algorithm="ff-progressive", n_layers=2, hidden=256, batch_size=512, device="meta",
        options={"cache": True},
    ))
    split = {k: v for k, v in row.items() if k.startswith("mem_") and v}
    assert max(split, key=split.__getitem__) == "mem_cache_bytes"
    assert row["mem_cache_bytes"] == 2 * 60_000 * 256 * 4  # synthetic: MNIST's 60,000 images


def train_peaks(algorithm: str, depths: tuple[int, int]) -> list[dict[str, object]]:
    return [
        run_cell(CellSpec(algorithm=algorithm, n_layers=n, hidden=256, batch_size=512,
                          device="meta"))
        for n in depths
    ]


LAYER_PARAMETER_BYTES = (256 * 256 + 256) * 4  # one hidden layer's weights and biases, fp32
LAYER_STATE_BYTES = 3 * LAYER_PARAMETER_BYTES  # with Adam's two moments


def test_layerwise_device_memory_does_not_grow_with_depth() -> None:
    shallow, deep = train_peaks("ff-layerwise", (2, 8))
    growth = deep["train_peak_tracked_bytes"] - shallow["train_peak_tracked_bytes"]
    assert growth < 0.05 * LAYER_STATE_BYTES
    # the frozen layers are on the host: it grows by their parameters
    host_growth = deep["host_peak_tracked_bytes"] - shallow["host_peak_tracked_bytes"]
    assert host_growth >= 6 * LAYER_PARAMETER_BYTES


def test_ff_device_memory_grows_by_one_layers_state_per_layer() -> None:
    shallow, deep = train_peaks("ff", (2, 8))
    growth = deep["train_peak_tracked_bytes"] - shallow["train_peak_tracked_bytes"]
    assert growth == 6 * LAYER_STATE_BYTES  # gradients are freed after each layer's step


@pytest.mark.parametrize(
    ("cls", "algorithm", "options"),
    [
        (ProgressiveFF, "ff-progressive", {"cache": False}),
        (ProgressiveFF, "ff-progressive", {"cache": True}),
        (LayerwiseFF, "ff-layerwise", {}),
    ],
)
def test_analytic_flops_match_torch_flop_counter(
    cls: type[ProgressiveFF], algorithm: str, options: dict[str, object]
) -> None:
    ff = build(cls, algorithm, eval_batch_size=4, options=options)
    data = stream()
    ff.use_training_set(data)
    ff.train_step(*data.next())  # moves to the deepest layer: the measured state
    with FlopCounterMode(display=False) as train:
        ff.train_step(*data.next())
    with FlopCounterMode(display=False) as evaluation:
        ff.predict(torch.rand(4, MNIST_PIXELS))
    assert train.get_total_flops() == ff.train_flops_per_step()
    assert evaluation.get_total_flops() == ff.eval_flops_per_batch()
