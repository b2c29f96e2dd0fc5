"""One cell's settings (CellSpec) and the table that describes each of them.

Every CellSpec field carries its `Setting`: the command-line flag, the help text, whether it
is part of the cell's identity, whether it applies only to goodness-based (Forward-Forward
family) algorithms, the sweep grid key that sets it per cell, how a flag's text becomes its
value, and its check. The command line's options (run, sweep, explain, capacity), the sweep
files' keys, the result rows' setting columns, the validation messages and the resume
command all come from this one table: adding a setting is one field here.

Torch-free and algorithm-free: whether the algorithm exists, its options, and the defaults it
fills in (learning rate, threshold, options) are checked and resolved by
ffbench.algorithms.resolve, which knows the algorithms.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ffbench.errors import BadInput
from ffbench.goodness import GOODNESS
from ffbench.settings.checks import finite_number, one_of, storable, whole_number
from ffbench.settings.gpus import DEFAULT_GPU, GPUS

DATASETS = ("synthetic", "mnist", "mnist-5k")
DTYPES = ("float32", "bfloat16")
OPTIMIZERS = ("adam", "sgd", "momentum")  # built by algorithms.base.make_optimizer
DEFAULT_OPTIMIZER = "adam"
MOMENTUM = 0.9  # the `momentum` optimizer's coefficient (SGD with momentum)
MNIST_CLASSES = 10
MNIST_PIXELS = 28 * 28
# Sizes a cell can be built at, on any device: Python makes one module per layer and one
# optimizer per layer even on meta, every batch is gathered as uint8 pixels in host memory
# first, and every step runs in Python (a generated 2**31 took a host's 24 GiB).
MAX_LAYERS = 10_000
MAX_HIDDEN = 10**6
MAX_BATCH_SIZE = 10**6  # 784 MB of host pixels per batch
MAX_STEPS = 10**6
MAX_THREADS = 1024  # torch takes a C int; no host has more cores than this
PREDICTED_DEVICE = "meta"  # fake tensors: memory predicted, nothing computed or timed
HOST_DEVICE = "cpu"  # host and device are one memory
# the measured run a machine without a GPU gets beside the prediction: its sweep is named so
CPU_STAND_IN_SUFFIX = "-cpu-stand-in"


def stand_in(hidden: Iterable[int], batch_sizes: Iterable[int]) -> str:
    """How the CPU stand-in is named wherever it appears: "CPU stand-in: hidden 256, batch
    128"."""
    return (f"CPU stand-in: hidden {','.join(map(str, hidden))}, batch "
            f"{','.join(map(str, batch_sizes))}")


EVAL_CHUNK_EQUAL = "equal"  # FF eval holds at most the eval batch's rows (the default)
EVAL_CHUNK_ALL = "all"  # every label of the whole eval batch at once (as published): 0

_DEVICE_PATTERN = re.compile(r"^(cpu|meta|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Setting:
    """What the table says about one CellSpec field."""

    help: str
    flag: str = ""  # the command-line flag without "--" ("" = the field's name, "_" -> "-")
    identity: bool = True  # part of the cell's identity (its id), and a result column
    goodness_only: bool = False  # acts only in goodness-based (FF family) algorithms
    grid: str = ""  # the sweep grid key that sets it per cell (a range of values)
    grid_help: str = ""  # that key's help on `ffbench sweep`
    capacity: bool = True  # `ffbench capacity` takes it (it changes what memory is needed)
    text: Callable[[Any], Any] | None = None  # a flag's (or a sweep file's) value -> the field's
    check: Callable[[str, Any], None] | None = None  # (flag, value): BadInput if wrong


def setting(default: Any, help: str, **facts: Any) -> Any:
    """A CellSpec field with its Setting (a dict default is copied per instance)."""
    metadata = {"setting": Setting(help=help, **facts)}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


def _whole(low: int, high: int) -> Callable[[str, Any], None]:
    def check(flag: str, value: Any) -> None:
        whole_number(flag, value, low, high)

    return check


def _optional_whole(low: int, high: int) -> Callable[[str, Any], None]:
    def check(flag: str, value: Any) -> None:
        if value is not None:
            whole_number(flag, value, low, high)

    return check


def _choice(choices: tuple[str, ...]) -> Callable[[str, Any], None]:
    def check(flag: str, value: Any) -> None:
        one_of(flag, value, choices)

    return check


def _lr(flag: str, value: Any) -> None:
    if value is not None and not finite_number(flag, value) > 0:
        raise BadInput(f"--{flag} must be positive, got {value}")


def _threshold(flag: str, value: Any) -> None:
    if value is not None:
        finite_number(flag, value)


def _bool(flag: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise BadInput(f"--{flag} must be true or false, got {value!r}")


def _options(flag: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise BadInput(f"--{flag}: expected NAME=VALUE settings, got {value!r}")
    for name, item in value.items():
        storable(f"option {name}", item)


def _device(flag: str, value: Any) -> None:
    if not isinstance(value, str) or not _DEVICE_PATTERN.match(value):
        raise BadInput(f"unknown device {value!r} (use cpu, cuda, cuda:N or meta)")


def _data_dir(flag: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise BadInput(f"--{flag} must be a folder's path, got {value!r}")


def eval_chunk_value(value: Any) -> Any:
    """`--eval-chunk` text: "equal" (None: the default), "all" (0) or a number of rows."""
    if value == EVAL_CHUNK_EQUAL:
        return None
    if value == EVAL_CHUNK_ALL:
        return 0
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise BadInput(f"--eval-chunk {value!r}: use {EVAL_CHUNK_EQUAL}, {EVAL_CHUNK_ALL} "
                           "or a number of rows")
        return int(value)
    return value


def options_value(value: Any) -> Any:
    """`--option` texts ["iterations=8", "damping=0.3"] -> {"iterations": 8, ...} (values
    read as JSON, else taken as text); a dict (a sweep file's table) as it is."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        value = [value]
    options: dict[str, Any] = {}
    for pair in value:
        name, sep, text = str(pair).partition("=")
        if not sep or not name:
            raise BadInput(f"--option {pair!r}: write NAME=VALUE")
        try:
            options[name] = json.loads(text)
        except json.JSONDecodeError:
            options[name] = text
    return options


def option_text(value: Any) -> str:
    """An option's value as `--option NAME=TEXT` reads it back (`options_value`): JSON
    (true, 2, 0.3, [1, 2]), and text as it is unless it would read as JSON ("2" -> "\"2\"")."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return value
    return json.dumps(value)


@dataclass(frozen=True)
class CellSpec:
    """One measured configuration: an algorithm at one depth, width and batch size.

    `batch_size` is real images per step; FF variants also process negatives (the result's
    `rows_per_step`). None means "the default": eval_batch_size the batch size, lr and
    threshold the algorithm's and the goodness function's, eval_chunk equal rows
    (ffbench.algorithms.resolve fills them in)."""

    algorithm: str
    n_layers: int = setting(
        2, "Number of hidden layers.", flag="layers", grid="layers",
        grid_help="Depths: 2..47, 2..47:5, 2,4,8 or a mixture.", capacity=False,
        check=_whole(1, MAX_LAYERS))
    hidden: int = setting(
        2000, "Units per hidden layer.", grid="hidden",
        grid_help="Units per hidden layer (same syntax as --layers).",
        check=_whole(1, MAX_HIDDEN))
    batch_size: int = setting(
        5000, "Real images per train step.", grid="batch_sizes",
        grid_help="Real images per train step (same syntax as --layers).",
        check=_whole(1, MAX_BATCH_SIZE))
    eval_batch_size: int | None = setting(
        None, "Images per eval batch (default: the batch size).",
        check=_optional_whole(1, MAX_BATCH_SIZE))
    dataset: str = setting(
        "synthetic", "synthetic, mnist or mnist-5k (real digits, offline).", capacity=False,
        check=_choice(DATASETS))
    device: str = setting(
        "cpu", "cpu, cuda, cuda:N, or meta (predict memory only, no GPU).", capacity=False,
        check=_device)
    dtype: str = setting("float32", "float32 or bfloat16.", check=_choice(DTYPES))
    goodness: str = setting(
        "meansq", f"FF goodness function: {', '.join(GOODNESS)}.", goodness_only=True,
        check=_choice(tuple(GOODNESS)))
    threshold: float | None = setting(
        None, "FF goodness threshold (default: the goodness function's).",
        goodness_only=True, capacity=False, check=_threshold)
    lr: float | None = setting(
        None, "Learning rate (default: the algorithm's).", capacity=False, check=_lr)
    optimizer: str = setting(
        DEFAULT_OPTIMIZER, "adam, sgd or momentum, the same for every algorithm.",
        check=_choice(OPTIMIZERS))
    seed: int = setting(
        0, "Seed for data, weights and negatives.", capacity=False, check=_whole(0, 2**63 - 1))
    warmup_steps: int = setting(
        2, "Warm-up train steps before measuring.", flag="warmup", capacity=False,
        check=_whole(0, MAX_STEPS))
    steps: int = setting(5, "Timed train steps.", capacity=False, check=_whole(1, MAX_STEPS))
    epochs: int = setting(
        0, "Training epochs for test accuracy (real data only).", capacity=False,
        check=_whole(0, MAX_STEPS))
    threads: int | None = setting(
        None, "CPU threads (default: torch's).", capacity=False,
        check=_optional_whole(1, MAX_THREADS))
    eval_chunk: int | None = setting(
        None, f"FF eval: replicated rows (one per image and label) alive at once: "
        f"{EVAL_CHUNK_EQUAL} (no more than the eval batch, as backprop's eval; the default), "
        f"{EVAL_CHUNK_ALL} (every label of the whole batch at once, as published) or a number.",
        goodness_only=True, text=eval_chunk_value, check=_optional_whole(0, 2**63 - 1))
    compile: bool = setting(
        False, "torch.compile each layer (timed; memory is measured eager).", capacity=False,
        check=_bool)
    options: dict[str, Any] = setting(
        {}, "An algorithm's own setting NAME=VALUE (repeatable; `ffbench algorithms`).",
        flag="option", text=options_value, check=_options)
    data_dir: str | None = setting(
        None, "Folder holding torchvision's MNIST files (--dataset mnist).", identity=False,
        capacity=False, check=_data_dir)
    target_gpu: str = setting(
        DEFAULT_GPU, f"With --device meta: the GPU whose allocator is predicted: "
        f"{', '.join(GPUS)}.", check=_choice(tuple(GPUS)))

    def __post_init__(self) -> None:
        validate(self)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CellSpec:
        return cls(**json.loads(text))


def settings() -> Iterator[tuple[str, Setting]]:
    """(field name, Setting) of every setting, in CellSpec's order."""
    for item in dataclasses.fields(CellSpec):
        if "setting" in item.metadata:
            yield item.name, item.metadata["setting"]


SETTINGS: dict[str, Setting] = dict(settings())
IDENTITY_FIELDS = ("algorithm", *(name for name, s in SETTINGS.items() if s.identity))
GOODNESS_ONLY = tuple(name for name, s in SETTINGS.items() if s.goodness_only)


def flag_of(name: str) -> str:
    """A field's command-line flag, without "--" (n_layers -> layers)."""
    return SETTINGS[name].flag or name.replace("_", "-")


def default_of(name: str) -> Any:
    item = CellSpec.__dataclass_fields__[name]
    return {} if item.default_factory is not dataclasses.MISSING else item.default


def value_of(name: str, value: Any) -> Any:
    """A field's value from a flag's text or a sweep file's value (the Setting's `text`)."""
    convert = SETTINGS[name].text
    return value if convert is None else convert(value)


def validate(spec: CellSpec) -> None:
    """Raise BadInput with one readable sentence for the first thing wrong."""
    if not isinstance(spec.algorithm, str) or not spec.algorithm:
        raise BadInput(f"no algorithm named (got {spec.algorithm!r})")
    for name, item in SETTINGS.items():
        if item.check is not None:
            item.check(flag_of(name), getattr(spec, name))
    if spec.target_gpu != DEFAULT_GPU and spec.device != "meta":
        raise BadInput("--target-gpu is for --device meta: a cuda cell reports for its own GPU, "
                       "a cpu cell for none")
    if spec.epochs > 0 and spec.dataset == "synthetic":
        raise BadInput("--epochs needs real data: use --dataset mnist or mnist-5k")
    if spec.epochs > 0 and spec.device == "meta":
        raise BadInput("--device meta predicts memory only; it cannot train for accuracy")


def cell_id_of(identity: dict[str, Any]) -> str:
    """The cell id of resolved identity fields: a stable 12-hex-digit hash, the same on any
    machine (ffbench.algorithms.resolve.identity)."""
    text = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


MNIST_FILES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)


def check_data(spec: CellSpec) -> None:
    """Whether this host has the cell's data (a property of the host, not of the
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
