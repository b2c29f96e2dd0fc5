"""What to measure: one cell (CellSpec) and the grammar of ranges a sweep expands.

Pure Python, no torch: the command line validates input here before any heavy import.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ffbench.algorithms import registry
from ffbench.errors import BadInput as BadInput  # re-exported: `from ffbench.spec import BadInput`
from ffbench.goodness import GOODNESS
from ffbench.gpus import DEFAULT_GPU, GPUS

DATASETS = ("synthetic", "mnist", "mnist-5k")
INT64_MAX = 2**63 - 1  # the largest integer a result column (parquet int64) holds
INT64_MIN = -(2**63)
DTYPES = ("float32", "bfloat16")
OPTIMIZERS = ("adam", "sgd", "momentum")  # built by algorithms.base.make_optimizer
DEFAULT_OPTIMIZER = "adam"
MOMENTUM = 0.9  # the `momentum` optimizer's coefficient (SGD with momentum)
MNIST_CLASSES = 10
MNIST_PIXELS = 28 * 28
# Sizes a cell can be built at, on any device: Python makes one module per layer and one
# optimizer per layer even on meta, every batch is gathered as uint8 pixels in host memory
# first, and every step runs in Python (a generated 2**31 took the host's 24 GiB).
MAX_LAYERS = 10_000
MAX_HIDDEN = 10**6
MAX_BATCH_SIZE = 10**6  # 784 MB of host pixels per batch
MAX_STEPS = 10**6
MAX_THREADS = 1024  # torch takes a C int; no host has more cores than this

_DEVICE_PATTERN = re.compile(r"^(cpu|meta|cuda(:\d+)?)$")


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
    optimizer: str = DEFAULT_OPTIMIZER
    seed: int = 0
    warmup_steps: int = 2
    steps: int = 5
    epochs: int = 0
    threads: int | None = None
    eval_chunk: int = 0
    compile: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    # the GPU a meta cell's allocator view is predicted for (a cuda cell's is its own)
    target_gpu: str = DEFAULT_GPU

    def __post_init__(self) -> None:
        validate(self)

    def resolved(self) -> CellSpec:
        """The same cell with every defaulted setting filled in."""
        info = registry.load(self.algorithm)
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
        """The fields that decide what is measured (paths excluded), resolved. Settings added
        later are left out at their defaults (the optimizer, the target GPU, an algorithm's
        late options), so cell ids from before they existed still hold."""
        fields = dataclasses.asdict(self.resolved())
        fields.pop("data_dir")
        for name, default in (("optimizer", DEFAULT_OPTIMIZER), ("target_gpu", DEFAULT_GPU)):
            if fields[name] == default:
                fields.pop(name)
        info = registry.ALGORITHMS[self.algorithm]
        fields["options"] = {
            name: value for name, value in fields["options"].items()
            if not (name in info.late_options and value == info.options[name])
        }
        return fields

    @property
    def cell_id(self) -> str:
        """A stable 12-hex-digit name: the same spec gives the same id on any machine."""
        return cell_id_of(self.identity())

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CellSpec:
        return cls(**json.loads(text))


def cell_id_of(identity: dict[str, Any]) -> str:
    """The cell id of resolved identity fields (CellSpec.identity(), or a row's columns)."""
    text = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


IDENTITY_FIELDS = tuple(f.name for f in dataclasses.fields(CellSpec) if f.name != "data_dir")


def identity_columns(spec: CellSpec, sweep_id: str) -> dict[str, Any]:
    """The identity columns of a result row (results.IDENTITY) for this cell."""
    return {
        "sweep_id": sweep_id, "cell_id": spec.cell_id, "optimizer": spec.optimizer,
        **spec.resolved().identity(),
        "target_gpu": spec.target_gpu if spec.device == "meta" else None,
    }


def validate(spec: CellSpec) -> None:
    """Raise BadInput with one readable sentence for the first thing wrong."""
    if spec.algorithm not in registry.ALGORITHMS:
        known = ", ".join(sorted(registry.ALGORITHMS))
        raise BadInput(f"unknown algorithm {spec.algorithm!r} (known: {known})")
    whole_number("layers", spec.n_layers, 1, MAX_LAYERS)
    whole_number("hidden", spec.hidden, 1, MAX_HIDDEN)
    whole_number("batch-size", spec.batch_size, 1, MAX_BATCH_SIZE)
    if spec.eval_batch_size is not None:
        whole_number("eval-batch-size", spec.eval_batch_size, 1, MAX_BATCH_SIZE)
    whole_number("steps", spec.steps, 1, MAX_STEPS)
    whole_number("warmup", spec.warmup_steps, 0, MAX_STEPS)
    whole_number("epochs", spec.epochs, 0, MAX_STEPS)
    _at_least_zero("eval-chunk", spec.eval_chunk)
    _at_least_zero("seed", spec.seed)
    if spec.threads is not None:
        whole_number("threads", spec.threads, 1, MAX_THREADS)
    if spec.lr is not None:
        finite_number("lr", spec.lr)
        if not spec.lr > 0:
            raise BadInput(f"--lr must be positive, got {spec.lr}")
    if spec.threshold is not None:
        finite_number("threshold", spec.threshold)
    if not isinstance(spec.compile, bool):
        raise BadInput(f"--compile must be true or false, got {spec.compile!r}")
    if not isinstance(spec.options, dict):
        raise BadInput(f"--option: expected NAME=VALUE settings, got {spec.options!r}")
    for name, value in spec.options.items():
        _storable(f"option {name}", value)
    one_of("dataset", spec.dataset, DATASETS)
    one_of("dtype", spec.dtype, DTYPES)
    one_of("optimizer", spec.optimizer, OPTIMIZERS)
    one_of("target-gpu", spec.target_gpu, tuple(GPUS))
    one_of("goodness", spec.goodness, tuple(GOODNESS))
    if not _DEVICE_PATTERN.match(spec.device):
        raise BadInput(f"unknown device {spec.device!r} (use cpu, cuda, cuda:N or meta)")
    if spec.target_gpu != DEFAULT_GPU and spec.device != "meta":
        raise BadInput("--target-gpu is for --device meta: a cuda cell reports for its own GPU, "
                       "a cpu cell for none")
    if spec.epochs > 0 and spec.dataset == "synthetic":
        raise BadInput("--epochs needs real data: use --dataset mnist or mnist-5k")
    if spec.epochs > 0 and spec.device == "meta":
        raise BadInput("--device meta predicts memory only; it cannot train for accuracy")
    registry.load(spec.algorithm).check_options(spec.options)


MNIST_FILES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)


def check_data(spec: CellSpec) -> None:
    """Whether this machine has the cell's data (a property of the machine, not of the
    cell: a result row of an mnist cell is valid anywhere)."""
    if spec.dataset == "mnist":
        _check_mnist_dir(spec.data_dir)


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


def whole_number(flag: str, value: Any, low: int, high: int = INT64_MAX) -> int:
    """An int (not a bool) in [low, high]: what the code and an int64 column can hold."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"--{flag} must be a whole number, got {value!r}")
    if value < low:
        word = "at least 1" if low == 1 else f"{low} or more"
        raise BadInput(f"--{flag} must be {word}, got {value}")
    if value > high:
        raise BadInput(f"--{flag} must be at most {high}, got {value}")
    return value


def finite_number(flag: str, value: Any) -> float:
    """A real, finite number (inf and nan refused: they make every result meaningless)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"--{flag} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise BadInput(f"--{flag} must be a finite number, got {value}")
    return float(value)


def _at_least_zero(flag: str, value: int) -> None:
    whole_number(flag, value, 0)


def _storable(what: str, value: Any) -> None:
    """A JSON value whose numbers are finite floats or int64 integers, nested or not."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise BadInput(f"{what}: {value} does not fit in 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise BadInput(f"{what} must be a finite number, got {value}")
    elif isinstance(value, (list, tuple)):
        for item in value:
            _storable(what, item)
    elif isinstance(value, dict):
        for item in value.values():
            _storable(what, item)
    else:
        raise BadInput(f"{what}: cannot use a {type(value).__name__}")


def one_of(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise BadInput(f"unknown {flag} {value!r} (use one of: {', '.join(choices)})")


DEFAULT_MAX_VALUES = 10_000  # values one range may expand to unless the caller allows more
_NUMBER = r"([0-9]{1,19})"  # at most 19 digits: anything longer is beyond int64 anyway


def parse_int_range(
    text: str, *, flag: str, max_values: int = DEFAULT_MAX_VALUES, limit_hint: str = "",
    high: int = INT64_MAX,
) -> list[int]:
    """Expand "2..47", "2..47:5", "2,4,8" or mixtures like "2,4..8:2" into sorted unique ints
    in [1, high].

    The ranges are counted and bounded before anything is expanded: a value above `high` or
    more than `max_values` values is refused (BadInput), so "1..1000000000000" costs
    nothing."""
    ranges: list[range] = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(rf"{_NUMBER}\.\.{_NUMBER}(?::{_NUMBER})?", part)
        single = re.fullmatch(_NUMBER, part)
        if match:
            start, stop, step = int(match[1]), int(match[2]), int(match[3] or 1)
            if stop < start:
                raise BadInput(f"--{flag}: range {part!r} runs backwards (write {stop}..{start})")
            if step < 1:
                raise BadInput(f"--{flag}: step in {part!r} must be at least 1")
            ranges.append(range(start, stop + 1, step))
        elif single:
            ranges.append(range(int(part), int(part) + 1))
        else:
            raise BadInput(f"--{flag}: cannot read {part!r} (use 2..47, 2..47:5 or 2,4,8)")
    if not ranges or min(r.start for r in ranges) < 1:
        raise BadInput(f"--{flag}: every value must be at least 1, got {text!r}")
    if max(r[-1] for r in ranges) > high:
        raise BadInput(f"--{flag}: every value must be at most {high}, got {text!r}")
    count = sum(len(r) for r in ranges)  # an upper bound of the unique values
    if count > max_values:
        raise BadInput(f"--{flag} {text}: {count} values, more than the limit of "
                       f"{max_values}{limit_hint}")
    return sorted({value for r in ranges for value in r})


def parse_names(text: str, *, flag: str, known: tuple[str, ...]) -> list[str]:
    """Split "bp,ff,rff" and check every name is known."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise BadInput(f"--{flag}: no names given")
    for name in names:
        one_of(flag.rstrip("s"), name, known)
    return names
