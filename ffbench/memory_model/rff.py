"""Memory model of `rff` (algorithms/rff.py): recurrent FF, synchronous damped updates.

A train step: one bottom-up pass without grad, then `iterations` iterations; in each, every
layer is recomputed from the previous iteration's states (all alive until the iteration
ends), damped, and takes one local FF update. Per update, rows = 2B: the two normalized
inputs (below, above; saved for the weights' gradients), the ReLU output, the damped new
state, and in backward the goodness' (rows, hidden) temporaries. Prediction replicates each
image per label and runs `readout_last` iterations; each keeps two sets of states.
"""

from __future__ import annotations

from ffbench.memory_model.core import (
    INT64_BYTES,
    CellModel,
    Param,
    Sizes,
    Timeline,
    adam_state,
    adam_step,
    linear_backward,
    load_batch,
    replay,
    zero_grad,
)
from ffbench.memory_model.ff import (
    candidate_labels,
    check_goodness,
    goodness,
    local_loss,
    normalized,
    predict_in_chunks,
    relu_backward,
    true_and_wrong_labels,
)
from ffbench.spec import MNIST_CLASSES, MNIST_PIXELS, CellSpec

ONE_HOT_CHECKS = 2  # F.one_hot checks its labels' range: aminmax makes two int64 scalars


def widths(spec: CellSpec) -> list[tuple[int, int]]:
    """(below, above) width of each layer: image below the first, label above the last."""
    below = [MNIST_PIXELS] + [spec.hidden] * (spec.n_layers - 1)
    above = [spec.hidden] * (spec.n_layers - 1) + [MNIST_CLASSES]
    return list(zip(below, above, strict=True))


def layer_params(spec: CellSpec, s: Sizes) -> list[list[Param]]:
    """Per layer, `parameters()` order: bottom_up weight and bias, top_down weight (no bias)."""
    return [
        [Param(f"{i}.bottom_up.weight", s.matrix(spec.hidden, below)),
         Param(f"{i}.bottom_up.bias", s.matrix(spec.hidden, 1)),
         Param(f"{i}.top_down.weight", s.matrix(spec.hidden, above))]
        for i, (below, above) in enumerate(widths(spec))
    ]


def model(spec: CellSpec) -> CellModel:
    check_goodness(spec)
    s = Sizes.of(spec)
    start = adam_state([p for layer in layer_params(spec, s) for p in layer], s)
    return replay(spec, s, start, train_step, predict)


def one_hot(t: Timeline, tag: str, labels: str, rows: int, s: Sizes, category: str) -> None:
    """F.one_hot(labels, C).to(dtype): range checks, an int64 (rows, C), then the cast."""
    for check in range(ONE_HOT_CHECKS):
        t.alloc(f"one_hot check {check} {tag}", INT64_BYTES, category)
    t.free(*(f"one_hot check {check} {tag}" for check in range(ONE_HOT_CHECKS)))
    t.alloc(f"one_hot int64 {tag}", rows * MNIST_CLASSES * INT64_BYTES, category)
    t.alloc(f"label {tag}", s.matrix(rows, MNIST_CLASSES), category)
    t.free(f"one_hot int64 {tag}", labels)


def positive_and_negative_rows(t: Timeline, batch: int, s: Sizes) -> None:
    """[y; wrong] (2B,), images x.repeat(2, 1) (2B, 784), labels one-hot."""
    true_and_wrong_labels(t, batch)
    t.alloc("image", s.matrix(2 * batch, MNIST_PIXELS), "inputs")
    one_hot(t, "train", "both labels", 2 * batch, s, "inputs")


def recurrent_layer(t: Timeline, tag: str, rows: int, below: int, above: int | None,
                    hidden: int, s: Sizes, grad: bool) -> str:
    """ReLU(bottom_up(normalize(below)) [+ top_down(normalize(above))]), ReLU in place;
    returns the output's name. With grad, the normalized inputs stay (the weights' gradients
    need them)."""
    x_below = normalized(t, f"{tag} below", rows, below, s)
    pre = f"bottom_up {tag}"
    t.alloc(pre, s.matrix(rows, hidden))
    if not grad:
        t.free(x_below)
    if above is not None:
        x_above = normalized(t, f"{tag} above", rows, above, s)
        t.alloc(f"top_down {tag}", s.matrix(rows, hidden))
        if not grad:
            t.free(x_above)
        t.alloc(f"pre {tag}", s.matrix(rows, hidden))
        t.free(f"top_down {tag}", pre)
        pre = f"pre {tag}"
    return pre


def damp(t: Timeline, tag: str, rows: int, hidden: int, s: Sizes) -> str:
    """(damping_new * computed).add_(old, alpha=damping_old): one new tensor, the state;
    returns its name."""
    t.alloc(f"state {tag}", s.matrix(rows, hidden))
    return f"state {tag}"


def bottom_up(t: Timeline, tag: str, rows: int, spec: CellSpec, s: Sizes) -> list[str]:
    """Iteration 0, no grad: each layer from the new one below; only the top hears the label."""
    states = []
    for i, (below, _) in enumerate(widths(spec)):
        above = MNIST_CLASSES if i == spec.n_layers - 1 else None
        states.append(recurrent_layer(t, f"{tag}.{i}", rows, below, above, spec.hidden, s,
                                      grad=False))
    return states


def train_update(t: Timeline, tag: str, i: int, spec: CellSpec, params: list[Param],
                 s: Sizes) -> None:
    """One layer's new state and its local update; the state and the loss stay."""
    rows, hidden = 2 * spec.batch_size, spec.hidden
    below, above = widths(spec)[i]
    computed = recurrent_layer(t, tag, rows, below, above, hidden, s, grad=True)
    damp(t, tag, rows, hidden, s)
    grad_state = local_loss(t, tag, rows, spec, s)  # RecurrentFF.train_goodness: SumOfSquares
    t.alloc(f"grad computed {tag}", s.matrix(rows, hidden))  # damping_new * grad
    t.free(grad_state)
    grad = relu_backward(t, tag, f"grad computed {tag}", computed, rows, hidden, s)
    t.alloc(f"grad {i}.top_down.weight", s.matrix(hidden, above))
    t.free(f"normalized {tag} above")
    t.relabel(f"grad {i}.top_down.weight", "gradients")
    linear_backward(t, f"{i}.bottom_up", grad, (rows, below, hidden), s, input_grad=False)
    t.free(f"normalized {tag} below", f"grad root {tag}")
    adam_step(t, params)
    zero_grad(t, params)


def train_step(t: Timeline, spec: CellSpec, s: Sizes) -> None:
    load_batch(t, spec.batch_size, s)
    positive_and_negative_rows(t, spec.batch_size, s)
    states = bottom_up(t, "up", 2 * spec.batch_size, spec, s)
    params = layer_params(spec, s)
    for k in range(int(spec.options["iterations"])):
        for i in range(spec.n_layers):
            train_update(t, f"{k}.{i}", i, spec, params[i], s)
        t.alloc(f"losses {k}", s.matrix(spec.n_layers, 1))  # torch.stack of the layers'
        t.free(*(f"loss {k}.{i}" for i in range(spec.n_layers)), *states)
        states = [f"state {k}.{i}" for i in range(spec.n_layers)]
    t.alloc("stacked losses", s.matrix(int(spec.options["iterations"]), spec.n_layers))


def every_label_rows(t: Timeline, c: int, images: int, s: Sizes) -> None:
    """Each image once per label (E * C, 784), and the labels one-hot (E * C, C)."""
    rows = images * MNIST_CLASSES
    labels = candidate_labels(t, c, rows)
    t.alloc(f"image {c}", s.matrix(rows, MNIST_PIXELS), "eval_replication")
    one_hot(t, str(c), labels, rows, s, "eval_replication")


def iterate(t: Timeline, tag: str, states: list[str], rows: int, spec: CellSpec,
            s: Sizes) -> list[str]:
    """Every layer's damped new state from the old ones, which go once all are made."""
    new = []
    for i, (below, above) in enumerate(widths(spec)):
        computed = recurrent_layer(t, f"{tag}.{i}", rows, below, above, spec.hidden, s,
                                   grad=False)
        new.append(damp(t, f"{tag}.{i}", rows, spec.hidden, s))
        t.free(computed)
    t.free(*states)
    return new


def readout_chunk(t: Timeline, c: int, images: int, spec: CellSpec, s: Sizes) -> None:
    """readout_goodness, summed over layers, argmax: the chunk's argmax stays for the cat."""
    rows = images * MNIST_CLASSES
    every_label_rows(t, c, images, s)
    states = bottom_up(t, f"{c}.up", rows, spec, s)
    t.alloc(f"score {c}", s.matrix(spec.n_layers, rows))
    first, last = int(spec.options["readout_first"]), int(spec.options["readout_last"])
    for iteration in range(1, last + 1):
        states = iterate(t, f"{c}.{iteration}", states, rows, spec, s)
        if iteration >= first:
            for i in range(spec.n_layers):
                goodness(t, f"{c}.{iteration}.{i}", rows, spec, s)
            t.alloc(f"stacked goodness {c}.{iteration}", s.matrix(spec.n_layers, rows))
            t.free(*(f"goodness {c}.{iteration}.{i}" for i in range(spec.n_layers)),
                   f"stacked goodness {c}.{iteration}")  # added into score in place
    t.free(f"image {c}", f"label {c}", *states)
    t.alloc(f"summed score {c}", s.matrix(rows, 1))
    t.free(f"score {c}")
    t.alloc(f"argmax {c}", images * INT64_BYTES)
    t.free(f"summed score {c}")


def predict(t: Timeline, spec: CellSpec, s: Sizes) -> None:
    predict_in_chunks(t, spec, s, readout_chunk)
