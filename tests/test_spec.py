from __future__ import annotations

import pytest

from ffbench.algorithms.resolve import cell_id, check, identity_columns, resolved
from ffbench.errors import BadInput
from ffbench.settings.cell import CellSpec, value_of
from ffbench.settings.ranges import parse_int_range


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2..5", [2, 3, 4, 5]),
        ("2..47:15", [2, 17, 32, 47]),
        ("2,4,8", [2, 4, 8]),
        ("8,2..4,4", [2, 3, 4, 8]),
        ("7", [7]),
    ],
)
def test_ranges_expand(text: str, expected: list[int]) -> None:
    assert parse_int_range(text, flag="layers") == expected


@pytest.mark.parametrize("text", ["47..2", "x", "", "0", "2..5:0", "1,,x", "-1"])
def test_bad_ranges_are_refused(text: str) -> None:
    with pytest.raises(BadInput):
        parse_int_range(text, flag="layers")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"n_layers": 0}, "--layers"),
        ({"batch_size": -1}, "--batch-size"),
        ({"algorithm": "nope"}, "unknown algorithm"),
        ({"device": "tpu"}, "unknown device"),
        ({"dtype": "float8"}, "dtype"),
        ({"options": {"no_such_option": 1}}, "unknown option"),
        ({"options": {"readout": "softmax"}}, "readout='softmax': use one of goodness, linear"),
        ({"options": {"readout_lr": -0.1}}, "readout_lr must be 0"),
        ({"options": {"normalization": "batch"}}, "normalization='batch': use one of length, rms"),
        ({"epochs": 1}, "needs real data"),
        ({"epochs": 1, "dataset": "mnist-5k", "device": "meta"}, "cannot train for accuracy"),
    ],
)
def test_bad_specs_name_the_problem(change: dict[str, object], words: str) -> None:
    fields: dict[str, object] = {"algorithm": "ff", "n_layers": 2} | change
    with pytest.raises(BadInput, match=words):
        check(CellSpec(**fields))  # type: ignore[arg-type]


def test_cell_id_is_stable_and_sees_defaults() -> None:
    spec = CellSpec("ff", n_layers=3, hidden=256, batch_size=512)
    same = CellSpec("ff", n_layers=3, hidden=256, batch_size=512, lr=0.03, threshold=2.0)
    other = CellSpec("ff", n_layers=4, hidden=256, batch_size=512)
    assert cell_id(spec) == cell_id(same) != cell_id(other)
    assert CellSpec.from_json(spec.to_json()) == spec


def test_resolved_fills_algorithm_and_goodness_defaults() -> None:
    bp = resolved(CellSpec("bp", n_layers=2, hidden=100, batch_size=10))
    ff = resolved(CellSpec("ff", n_layers=2, hidden=100, batch_size=10, goodness="sumsq"))
    assert (bp.lr, bp.eval_batch_size) == (1e-3, 10)
    assert (ff.lr, ff.threshold) == (0.03, 200.0)
    assert ff.options == {"readout_from_layer": 1, "readout": "goodness", "readout_lr": 0.0,
                          "normalization": "length"}


# cell ids from before the `readout` option (and rff's `readout_from_layer`) existed, when
# FF's eval held every label of the eval batch at once (eval_chunk 0)
IDS_BEFORE_THE_READOUT_OPTION = {
    "ff": "3cc823ae6e99", "ff-progressive": "418d1f681b7a", "ff-layerwise": "75bd8b32403d",
    "rff": "685532ac19e8",
}


@pytest.mark.parametrize("algorithm", sorted(IDS_BEFORE_THE_READOUT_OPTION))
def test_the_default_readout_keeps_stored_cell_ids(algorithm: str) -> None:
    def cell(**options: object) -> CellSpec:
        return CellSpec(algorithm, n_layers=3, hidden=256, batch_size=512, eval_chunk=0,
                        options=options)

    assert cell_id(cell()) == cell_id(cell(readout="goodness", readout_lr=0.0,
                                           normalization="length"))
    assert cell_id(cell()) == IDS_BEFORE_THE_READOUT_OPTION[algorithm]
    assert cell_id(cell(readout="linear")) != cell_id(cell())


def test_ff_eval_holds_at_most_the_eval_batch_unless_told_otherwise() -> None:
    ff = CellSpec("ff", n_layers=2, hidden=100, batch_size=10, eval_batch_size=30)
    assert resolved(ff).eval_chunk == 30  # replicated rows alive at once: the eval batch's
    published = CellSpec("ff", n_layers=2, hidden=100, batch_size=10, eval_batch_size=30,
                         eval_chunk=value_of("eval_chunk", "all"))
    assert resolved(published).eval_chunk == 0  # every label of the whole batch at once
    assert value_of("eval_chunk", "equal") is None and value_of("eval_chunk", "12") == 12
    assert cell_id(published) != cell_id(ff)
    with pytest.raises(BadInput, match="--eval-chunk"):
        value_of("eval_chunk", "most")


def test_goodness_only_settings_leave_backprops_id_and_row() -> None:
    plain = CellSpec("bp", n_layers=2, hidden=100, batch_size=10)
    ff_settings = {"goodness": "sumsq", "threshold": 3.0, "eval_chunk": 0}
    assert cell_id(CellSpec("bp", n_layers=2, hidden=100, batch_size=10, **ff_settings)) \
        == cell_id(plain)
    assert cell_id(CellSpec("ff", n_layers=2, hidden=100, batch_size=10, **ff_settings)) \
        != cell_id(CellSpec("ff", n_layers=2, hidden=100, batch_size=10))
    row = identity_columns(plain, "s")
    assert (row["goodness"], row["threshold"], row["eval_chunk"]) == (None, None, None)


def test_missing_mnist_is_the_machines_problem_not_the_cells() -> None:
    from ffbench.settings.cell import check_data

    spec = CellSpec(algorithm="ff", n_layers=2, dataset="mnist")  # a valid cell (a row's)
    with pytest.raises(BadInput, match="--data-dir"):
        check_data(spec)
