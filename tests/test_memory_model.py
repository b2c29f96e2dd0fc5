"""The analytic memory model against the tensor tracker, on real CPU steps and on meta."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from ffbench.algorithms.registry import ALGORITHMS
from ffbench.memory_model import MODELS, cell_model
from ffbench.memory_model.core import Block, Timeline
from ffbench.spec import BadInput, CellSpec

MODEL_RTOL = 0.02  # the bound; today the model is exact (see test_exact_bytes)
PREDICTED_RTOL = 0.01
# Three sizes where the peak sits in different places: Adam on the first layer,
# the goodness backward, and (bp) the backward through saved activations.
SIZES = [(1, 32, 16), (3, 128, 64), (2, 1000, 256)]
# Memory does not depend on pixel values; mnist-5k's 4,000 training images keep the
# whole-training-set caches (ff-progressive, ff-layerwise) quick to fill.
DATASET = "mnist-5k"
MODELLED = sorted(set(MODELS) & set(ALGORITHMS))


def registered(algorithm: str, **options: object) -> object:
    return pytest.param(algorithm, options, id=f"{algorithm}-{'-'.join(map(str, options))}",
                        marks=pytest.mark.skipif(algorithm not in ALGORITHMS,
                                                 reason=f"{algorithm} is not registered"))


def measured(spec: CellSpec):  # type: ignore[no-untyped-def]
    from ffbench.cell import load_dataset, memory_peaks

    spec = spec.resolved()
    return memory_peaks(spec, load_dataset(spec))


def cpu_spec(algorithm: str, layers: int, hidden: int, batch: int, **kw: object) -> CellSpec:
    return CellSpec(algorithm, n_layers=layers, hidden=hidden, batch_size=batch,
                    device="cpu", threads=1, **kw)  # type: ignore[arg-type]


def test_every_registered_algorithm_has_a_model() -> None:
    assert set(ALGORITHMS) <= set(MODELS), f"no model for {set(ALGORITHMS) - set(MODELS)}"


@pytest.mark.parametrize("algorithm", MODELLED)
@pytest.mark.parametrize(("layers", "hidden", "batch"), SIZES)
def test_tracked_and_predicted_peaks_match_the_model(
    algorithm: str, layers: int, hidden: int, batch: int
) -> None:
    spec = cpu_spec(algorithm, layers, hidden, batch, dataset=DATASET)
    peaks, model = measured(spec), cell_model(spec)
    meta = cell_model(dataclasses.replace(spec, device="meta"))
    for tracked, predicted, analytic, on_meta in (
        (peaks.train, peaks.predicted_train, model.train, meta.train),
        (peaks.eval, peaks.predicted_eval, model.eval, meta.eval),
    ):
        assert tracked.tracked_bytes == pytest.approx(analytic.nbytes, rel=MODEL_RTOL)
        assert predicted.tracked_bytes == pytest.approx(on_meta.nbytes, rel=MODEL_RTOL)
        for name, nbytes in analytic.split.items():  # and the split, within 2% of the peak
            assert abs(tracked.split[name] - nbytes) <= MODEL_RTOL * analytic.nbytes, name
        # on meta the host is not the device: only where the host holds (next to) nothing,
        # as in all but ff-layerwise (host cache), is the prediction the CPU's peak
        if on_meta.nbytes == pytest.approx(analytic.nbytes, rel=PREDICTED_RTOL):
            assert predicted.tracked_bytes == pytest.approx(
                tracked.tracked_bytes, rel=PREDICTED_RTOL)


@pytest.mark.parametrize(
    ("algorithm", "options"),
    [registered("bp"), registered("ff"),
     registered("ff", goodness="sumsq", eval_chunk=70, eval_batch_size=33),
     registered("ff", dtype="bfloat16"),
     registered("rff", goodness="sumsq", eval_chunk=70, eval_batch_size=33),
     registered("ff-progressive", options={"cache": True}),
     registered("ff-layerwise", eval_chunk=50)],
)
def test_exact_bytes(algorithm: str, options: dict[str, object]) -> None:
    """Byte for byte, split included: the timeline is the program's, not an estimate."""
    spec = cpu_spec(algorithm, 2, 96, 40, dataset=DATASET, **options)
    peaks, model = measured(spec), cell_model(spec)
    assert (peaks.train.tracked_bytes, peaks.eval.tracked_bytes) == (
        model.train.nbytes, model.eval.nbytes)
    assert peaks.train.split == model.train.split
    assert peaks.eval.split == model.eval.split
    meta = cell_model(dataclasses.replace(spec, device="meta"))
    assert (peaks.predicted_train.tracked_bytes, peaks.predicted_eval.tracked_bytes) == (
        meta.train.nbytes, meta.eval.nbytes)


def test_ff_per_layer_slope_at_the_published_width() -> None:
    """48 MB per 2000x2000 fp32 layer: weights 16 + Adam moments 32, no persistent gradients."""
    spec = CellSpec("ff", n_layers=2, hidden=2000, batch_size=5000, device="meta")
    deep = dataclasses.replace(spec, n_layers=12)
    slope = (cell_model(deep).train.nbytes - cell_model(spec).train.nbytes) / 10
    weights, bias = 2000 * 2000 * 4, 2000 * 4
    one_loss_scalar = 4
    assert slope == 3 * (weights + bias) + one_loss_scalar
    predicted = (measured(deep).predicted_train.tracked_bytes
                 - measured(spec).predicted_train.tracked_bytes) / 10
    assert predicted == pytest.approx(slope, rel=MODEL_RTOL)


def test_training_set_sizes_match_the_data() -> None:
    from ffbench import data
    from ffbench.memory_model.ff_progressive import TRAIN_IMAGES

    assert TRAIN_IMAGES["synthetic"] == data.SYNTHETIC_TRAIN_SIZE
    spec = CellSpec("ff", n_layers=1, dataset="mnist-5k")
    assert TRAIN_IMAGES["mnist-5k"] == len(data.load(spec).train_labels)


def test_eval_chunking_bounds_the_replicated_rows() -> None:
    whole = cell_model(CellSpec("ff", n_layers=2, hidden=500, batch_size=1000))
    chunked = cell_model(CellSpec("ff", n_layers=2, hidden=500, batch_size=1000, eval_chunk=1000))
    pixels_bytes = 784 * 4
    assert whole.eval.split["eval_replication"] == 1000 * 10 * pixels_bytes
    assert chunked.eval.split["eval_replication"] == 1000 * pixels_bytes  # 100 images x 10
    assert chunked.eval.nbytes < whole.eval.nbytes / 4


def test_timeline_keeps_the_largest_total_and_its_split() -> None:
    t = Timeline({"w": Block(100, "parameters")})
    t.alloc("a", 50)
    t.alloc("b", 30, "inputs")
    t.free("a")
    t.alloc("c", 60)  # 190 > 180: the new peak
    t.relabel("c", "gradients")
    t.free("b", "c")
    assert (t.peak.nbytes, t.peak.at, t.live_bytes) == (190, "c", 100)
    assert t.peak.split["activations"] == 60  # as it was at the peak, not relabelled after
    assert t.peak.split["inputs"] == 30 and t.peak.split["parameters"] == 100


def test_an_algorithm_without_a_model_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(MODELS, "bp")
    with pytest.raises(BadInput, match="no analytic memory model"):
        cell_model(CellSpec("bp", n_layers=1))


def test_the_model_imports_without_torch() -> None:
    code = "import sys, ffbench.memory_model; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
