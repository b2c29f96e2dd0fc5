from __future__ import annotations

import pytest

from ffbench.spec import BadInput, CellSpec, parse_int_range


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
        CellSpec(**fields)  # type: ignore[arg-type]


def test_cell_id_is_stable_and_sees_defaults() -> None:
    spec = CellSpec("ff", n_layers=3, hidden=256, batch_size=512)
    same = CellSpec("ff", n_layers=3, hidden=256, batch_size=512, lr=0.03, threshold=2.0)
    other = CellSpec("ff", n_layers=4, hidden=256, batch_size=512)
    assert spec.cell_id == same.cell_id != other.cell_id
    assert CellSpec.from_json(spec.to_json()) == spec


def test_resolved_fills_algorithm_and_goodness_defaults() -> None:
    bp = CellSpec("bp", n_layers=2, hidden=100, batch_size=10).resolved()
    ff = CellSpec("ff", n_layers=2, hidden=100, batch_size=10, goodness="sumsq").resolved()
    assert (bp.lr, bp.eval_batch_size) == (1e-3, 10)
    assert (ff.lr, ff.threshold) == (0.03, 200.0)
    assert ff.options == {"readout_from_layer": 1, "readout": "goodness", "readout_lr": 0.0,
                          "normalization": "length"}


# cell ids from before the `readout` option (and rff's `readout_from_layer`) existed
IDS_BEFORE_THE_READOUT_OPTION = {
    "ff": "3cc823ae6e99", "ff-progressive": "418d1f681b7a", "ff-layerwise": "75bd8b32403d",
    "rff": "685532ac19e8",
}


@pytest.mark.parametrize("algorithm", sorted(IDS_BEFORE_THE_READOUT_OPTION))
def test_the_default_readout_keeps_stored_cell_ids(algorithm: str) -> None:
    def cell(**options: object) -> CellSpec:
        return CellSpec(algorithm, n_layers=3, hidden=256, batch_size=512, options=options)

    assert cell().cell_id == cell(readout="goodness", readout_lr=0.0,
                                  normalization="length").cell_id
    assert cell().cell_id == IDS_BEFORE_THE_READOUT_OPTION[algorithm]
    assert cell(readout="linear").cell_id != cell().cell_id


def test_missing_mnist_is_the_machines_problem_not_the_cells() -> None:
    from ffbench.spec import check_data

    spec = CellSpec(algorithm="ff", n_layers=2, dataset="mnist")  # a valid cell (a row's)
    with pytest.raises(BadInput, match="--data-dir"):
        check_data(spec)
