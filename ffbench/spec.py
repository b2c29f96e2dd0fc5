"""What to measure: one cell (CellSpec) and the grammar of ranges a sweep expands.

Pure Python, no torch: the command line validates input here before any heavy import.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ffbench.algorithms.registry import ALGORITHMS
from ffbench.goodness import GOODNESS

DATASETS = ("synthetic", "mnist", "mnist-5k")
DTYPES = ("float32", "bfloat16")
MNIST_CLASSES = 10
MNIST_PIXELS = 28 * 28

_DEVICE_PATTERN = re.compile(r"^(cpu|meta|cuda(:\d+)?)$")


class BadInput(ValueError):
    """User input that cannot be run; the CLI prints it as one line and exits 2."""


@dataclass(frozen=True)
class CellSpec:
    """One measured configuration: an algorithm at one depth, width and batch size.

    `batch_size` is real images per step; FF variants also process negatives
    (see the result's `rows_per_step`). `lr` and `threshold` of None take the
    algorithm's and the goodness function's defaults (see `resolved`).
    """

    algorithm: str
    n_layers: int
    hidden: int = 2000
    batch_size: int = 5000
    eval_batch_size: int | None = None
    dataset: str = "synthetic"
    device: str = "cpu"
    dtype: str = "float32"
    goodness: str = "meansq"
    threshold: float | None = None
    lr: float | None = None
    seed: int = 0
    warmup_steps: int = 2
    steps: int = 5
    epochs: int = 0
    threads: int | None = None
    eval_chunk: int = 0
    compile: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None

    def __post_init__(self) -> None:
        validate(self)

    def resolved(self) -> CellSpec:
        """The same cell with every defaulted setting filled in."""
        info = ALGORITHMS[self.algorithm]
        return dataclasses.replace(
            self,
            eval_batch_size=self.eval_batch_size or self.batch_size,
            lr=info.default_lr if self.lr is None else self.lr,
            threshold=(
                GOODNESS[self.goodness].default_threshold(self.hidden)
                if self.threshold is None
                else self.threshold
            ),
            options={**info.options, **self.options},
        )

    def identity(self) -> dict[str, Any]:
        """The fields that decide what is measured (paths excluded), resolved."""
        fields = dataclasses.asdict(self.resolved())
        fields.pop("data_dir")
        return fields

    @property
    def cell_id(self) -> str:
        """A stable 12-hex-digit name: the same spec gives the same id on any machine."""
        text = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CellSpec:
        return cls(**json.loads(text))


def identity_columns(spec: CellSpec, sweep_id: str) -> dict[str, Any]:
    """The identity columns of a result row (results.IDENTITY) for this cell."""
    return {"sweep_id": sweep_id, "cell_id": spec.cell_id, **spec.resolved().identity()}


def validate(spec: CellSpec) -> None:
    """Raise BadInput with one readable sentence for the first thing wrong."""
    if spec.algorithm not in ALGORITHMS:
        known = ", ".join(sorted(ALGORITHMS))
        raise BadInput(f"unknown algorithm {spec.algorithm!r} (known: {known})")
    _positive("layers", spec.n_layers)
    _positive("hidden", spec.hidden)
    _positive("batch-size", spec.batch_size)
    if spec.eval_batch_size is not None:
        _positive("eval-batch-size", spec.eval_batch_size)
    _positive("steps", spec.steps)
    _at_least_zero("warmup", spec.warmup_steps)
    _at_least_zero("epochs", spec.epochs)
    _at_least_zero("eval-chunk", spec.eval_chunk)
    if spec.threads is not None:
        _positive("threads", spec.threads)
    if spec.lr is not None and not spec.lr > 0:
        raise BadInput(f"--lr must be positive, got {spec.lr}")
    one_of("dataset", spec.dataset, DATASETS)
    one_of("dtype", spec.dtype, DTYPES)
    one_of("goodness", spec.goodness, tuple(GOODNESS))
    if not _DEVICE_PATTERN.match(spec.device):
        raise BadInput(f"unknown device {spec.device!r} (use cpu, cuda, cuda:N or meta)")
    if spec.dataset == "mnist":
        _check_mnist_dir(spec.data_dir)
    if spec.epochs > 0 and spec.dataset == "synthetic":
        raise BadInput("--epochs needs real data: use --dataset mnist or mnist-5k")
    if spec.epochs > 0 and spec.device == "meta":
        raise BadInput("--device meta predicts memory only; it cannot train for accuracy")
    ALGORITHMS[spec.algorithm].check_options(spec.options)


MNIST_FILES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)


def _check_mnist_dir(data_dir: str | None) -> None:
    """torchvision's MNIST layout: DIR/MNIST/raw/<the four files>; nothing is downloaded."""
    if not data_dir:
        raise BadInput("--dataset mnist needs --data-dir DIR holding torchvision's MNIST files")
    raw = Path(data_dir) / "MNIST" / "raw"
    if not Path(data_dir).is_dir():
        raise BadInput(f"--data-dir {data_dir}: no such directory")
    missing = [name for name in MNIST_FILES if not (raw / name).is_file()]
    if missing:
        raise BadInput(f"--data-dir {data_dir}: no MNIST there (missing {raw / missing[0]})")


def _positive(flag: str, value: int) -> None:
    if value < 1:
        raise BadInput(f"--{flag} must be at least 1, got {value}")


def _at_least_zero(flag: str, value: int) -> None:
    if value < 0:
        raise BadInput(f"--{flag} must be 0 or more, got {value}")


def one_of(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise BadInput(f"unknown {flag} {value!r} (use one of: {', '.join(choices)})")


def parse_int_range(text: str, *, flag: str) -> list[int]:
    """Expand "2..47", "2..47:5", "2,4,8" or mixtures like "2,4..8:2" into sorted unique ints."""
    values: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)\.\.(\d+)(?::(\d+))?", part)
        if match:
            start, stop, step = int(match[1]), int(match[2]), int(match[3] or 1)
            if stop < start:
                raise BadInput(f"--{flag}: range {part!r} runs backwards (write {stop}..{start})")
            if step < 1:
                raise BadInput(f"--{flag}: step in {part!r} must be at least 1")
            values.update(range(start, stop + 1, step))
        elif re.fullmatch(r"\d+", part):
            values.add(int(part))
        else:
            raise BadInput(f"--{flag}: cannot read {part!r} (use 2..47, 2..47:5 or 2,4,8)")
    if not values or min(values) < 1:
        raise BadInput(f"--{flag}: every value must be at least 1, got {text!r}")
    return sorted(values)


def parse_names(text: str, *, flag: str, known: tuple[str, ...]) -> list[str]:
    """Split "bp,ff,rff" and check every name is known."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise BadInput(f"--{flag}: no names given")
    for name in names:
        one_of(flag.rstrip("s"), name, known)
    return names
