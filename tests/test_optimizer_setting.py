"""The optimizer as a setting of every cell: flags, sweep key, result column, cell id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Cli

from ffbench.algorithms.resolve import cell_id, check, identity_columns
from ffbench.errors import BadInput
from ffbench.settings.cell import CellSpec
from ffbench.sweep import spec as sweep_spec


def test_adam_keeps_the_cell_id_and_other_optimizers_make_new_ones() -> None:
    adam = CellSpec("ff", n_layers=3)
    ids = {cell_id(CellSpec("ff", n_layers=3, optimizer=name)) for name in ("sgd", "momentum")}
    assert cell_id(CellSpec("ff", n_layers=3, optimizer="adam")) == cell_id(adam)
    assert cell_id(adam) not in ids and len(ids) == 2
    assert identity_columns(CellSpec("ff", n_layers=3, optimizer="sgd"), "s")["optimizer"] == "sgd"
    assert identity_columns(adam, "s")["optimizer"] == "adam"


def test_bp_options_at_their_defaults_keep_bp_cell_ids() -> None:
    given = CellSpec("bp", n_layers=3, options={"checkpoint_segments": 0, "fused_step": False})
    assert cell_id(given) == cell_id(CellSpec("bp", n_layers=3))
    assert cell_id(CellSpec("bp", n_layers=3, options={"fused_step": True})) != cell_id(given)


def test_unknown_optimizer_and_negative_segments_are_bad_input() -> None:
    with pytest.raises(BadInput, match="optimizer"):
        CellSpec("ff", n_layers=1, optimizer="lion")
    with pytest.raises(BadInput, match="checkpoint_segments"):
        check(CellSpec("bp-lean", n_layers=1, options={"checkpoint_segments": -1}))


def test_run_takes_the_optimizer_and_writes_its_column(tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "r.json"
    result = cli("run", "ff", "--optimizer", "sgd", "--layers", "2", "--hidden", "32",
                 "--batch-size", "16", "--device", "meta", "--dataset", "mnist-5k", "--out", out)
    assert result.code == 0, result.err
    row = json.loads(out.read_text())
    weights = (784 * 32 + 32 + 32 * 32 + 32) * 4
    assert (row["optimizer"], row["static_bytes"]) == ("sgd", weights)


def test_sweep_key_and_flag_set_the_optimizer(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('algorithms = ["bp", "ff"]\nlayers = "1,2"\noptimizer = "momentum"\n')
    assert {c.optimizer for c in sweep_spec.load_sweep(str(path), {}).cells()} == {"momentum"}
    flagged = sweep_spec.load_sweep(str(path), {"optimizer": "sgd"})
    assert {c.optimizer for c in flagged.cells()} == {"sgd"}


def test_fair_sweep_is_both_baselines_and_ff_at_the_published_size() -> None:
    _, values = sweep_spec.read_sweep_file("fair")
    spec = sweep_spec.parse_sweep(values, "fair")
    assert spec.algorithms == ("bp", "bp-lean", "bp-offload", "ff", "ff-layerwise", "rff")
    assert spec.axes == {"optimizer": ["adam", "sgd"], "eval_chunk": [None, 0]}
    assert (spec.layers, spec.hidden, spec.batch_sizes) == (tuple(range(2, 48)), (2000,), (5000,))
    assert spec.device == "cuda"
