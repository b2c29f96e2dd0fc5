"""Memory model of `bp` (algorithms/bp.py): the hidden stack, a linear head, cross-entropy, Adam."""

from __future__ import annotations

from ffbench.memory_model.core import (
    INT64_BYTES,
    CellModel,
    Param,
    Sizes,
    Timeline,
    adam_state,
    adam_step,
    layer_widths,
    linear_backward,
    linear_params,
    load_batch,
    replay,
    zero_grad,
)
from ffbench.spec import MNIST_CLASSES, CellSpec

HEAD = "head"


def params(spec: CellSpec, s: Sizes) -> list[Param]:
    """model.parameters() order: layers.0.weight, layers.0.bias, ..., head.weight, head.bias."""
    hidden = [linear_params(f"layers.{i}", a, b, s) for i, (a, b) in enumerate(layer_widths(spec))]
    head = linear_params(HEAD, spec.hidden, MNIST_CLASSES, s)
    return [p for layer in hidden for p in layer] + head


def model(spec: CellSpec) -> CellModel:
    s = Sizes.of(spec)
    return replay(spec, s, adam_state(params(spec, s), s), train_step, predict)


def forward(t: Timeline, spec: CellSpec, rows: int, s: Sizes) -> None:
    """x = relu(layer(x)) per layer, ReLU in place on the Linear's output; autograd keeps
    every ReLU output (ReLU's and the next Linear's backward need it)."""
    for i, (_, fan_out) in enumerate(layer_widths(spec)):
        t.alloc(f"relu {i} out", s.matrix(rows, fan_out))


def cross_entropy(t: Timeline, rows: int, s: Sizes) -> None:
    """Head logits (rows, classes) -> log_softmax (saved) -> nll_loss (loss + total_weight)."""
    t.alloc("logits", s.matrix(rows, MNIST_CLASSES))
    t.alloc("log_softmax", s.matrix(rows, MNIST_CLASSES))
    t.alloc("loss", s.element_bytes)
    t.alloc("nll total_weight", s.element_bytes)
    t.free("logits")  # the head's backward needs its input, not its output


def backward(t: Timeline, spec: CellSpec, rows: int, s: Sizes) -> None:
    """From the loss down: each ReLU's saved output is released after its backward."""
    t.alloc("grad root", s.element_bytes)
    t.alloc("grad log_softmax", s.matrix(rows, MNIST_CLASSES))
    t.free("nll total_weight")
    t.alloc("grad logits", s.matrix(rows, MNIST_CLASSES))
    t.free("grad log_softmax", "log_softmax")
    linear_backward(t, HEAD, "grad logits", (rows, spec.hidden, MNIST_CLASSES), s, input_grad=True)
    grad_out = f"grad in {HEAD}"
    for i, (fan_in, fan_out) in reversed(list(enumerate(layer_widths(spec)))):
        t.alloc(f"grad relu {i}", s.matrix(rows, fan_out))  # threshold_backward
        t.free(grad_out, f"relu {i} out")
        linear_backward(t, f"layers.{i}", f"grad relu {i}", (rows, fan_in, fan_out), s,
                        input_grad=i > 0)  # x needs no gradient
        grad_out = f"grad in layers.{i}"
    t.free("grad root")


def train_step(t: Timeline, spec: CellSpec, s: Sizes) -> None:
    rows = spec.batch_size
    load_batch(t, rows, s)
    forward(t, spec, rows, s)
    cross_entropy(t, rows, s)
    backward(t, spec, rows, s)
    trained = params(spec, s)
    adam_step(t, trained)
    zero_grad(t, trained)


def predict(t: Timeline, spec: CellSpec, s: Sizes) -> None:
    """No grad: each ReLU output is dropped once the next one exists; argmax of the logits."""
    assert spec.eval_batch_size is not None
    rows = spec.eval_batch_size
    load_batch(t, rows, s)
    t.free("y")  # predict gets x only
    previous = "x"
    for i, (_, fan_out) in enumerate(layer_widths(spec)):
        t.alloc(f"relu {i} out", s.matrix(rows, fan_out))  # in place on the Linear's output
        if previous != "x":  # the caller still holds x
            t.free(previous)
        previous = f"relu {i} out"
    t.alloc("logits", s.matrix(rows, MNIST_CLASSES))
    t.free(previous)
    t.alloc("argmax", rows * INT64_BYTES)
