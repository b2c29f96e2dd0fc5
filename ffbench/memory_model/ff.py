"""Memory model of `ff` (algorithms/ff.py): every layer updated on every batch, one Adam each.

Per layer, rows = 2B ([positive; negative]): the normalized input (saved by the Linear),
the ReLU output (made in place on the Linear's output, saved by the fused ReLU + goodness
op; also the next layer's input), and in backward one (rows, hidden) tensor, the Linear
output's gradient 2 h dL/dg. (Prediction, without grad, runs ReLU and goodness apart.)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

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
from ffbench.spec import MNIST_CLASSES, MNIST_PIXELS, BadInput, CellSpec

# Goodness is out.norm(dim=1).square(), for meansq then divided by hidden (goodness.py):
# one more (rows,) tensor forward and backward.
DIVIDED_BY_WIDTH = {"meansq": True, "sumsq": False}


def layer_params(spec: CellSpec, s: Sizes) -> list[list[Param]]:
    """One Adam per layer, over `model[i].linear`'s weight and bias."""
    return [linear_params(f"{i}.linear", a, b, s) for i, (a, b) in enumerate(layer_widths(spec))]


def check_goodness(spec: CellSpec) -> None:
    if spec.goodness not in DIVIDED_BY_WIDTH:
        raise BadInput(f"no analytic memory model for goodness {spec.goodness!r} yet")


def model(spec: CellSpec) -> CellModel:
    check_goodness(spec)
    s = Sizes.of(spec)
    start = adam_state([p for layer in layer_params(spec, s) for p in layer], s)
    return replay(spec, s, start, train_step, predict)


def true_and_wrong_labels(t: Timeline, rows: int) -> None:
    """data.wrong_labels (offsets drawn, added, wrapped), then [y; wrong]: "both labels" (2B,)."""
    t.alloc("randint offsets", rows * INT64_BYTES, "inputs")
    t.alloc("labels + offsets", rows * INT64_BYTES, "inputs")
    t.alloc("wrong labels", rows * INT64_BYTES, "inputs")
    t.free("labels + offsets", "randint offsets")
    t.alloc("both labels", 2 * rows * INT64_BYTES, "inputs")
    t.free("wrong labels")


def positive_and_negative(t: Timeline, rows: int, s: Sizes) -> None:
    """data.positive_and_negative: [y; wrong] (2B,), x.repeat(2, 1) labelled in place."""
    true_and_wrong_labels(t, rows)
    t.alloc("h", s.matrix(2 * rows, MNIST_PIXELS), "inputs")
    t.free("both labels")


def normalized(t: Timeline, tag: object, rows: int, width: int, s: Sizes) -> str:
    """h / (h.norm(dim=1, keepdim=True) + eps): returns the result's name."""
    t.alloc(f"norm {tag}", s.matrix(rows, 1))
    t.alloc(f"norm + eps {tag}", s.matrix(rows, 1))
    t.free(f"norm {tag}")
    t.alloc(f"normalized {tag}", s.matrix(rows, width))
    t.free(f"norm + eps {tag}")
    return f"normalized {tag}"


def layer_forward(t: Timeline, tag: object, rows: int, widths: tuple[int, int], s: Sizes) -> str:
    """relu(linear(h / (h.norm(dim=1) + eps))); ReLU works in place on the Linear's output.
    Returns the output's name; the normalized input stays (the Linear saves it)."""
    fan_in, fan_out = widths
    normalized(t, tag, rows, fan_in, s)
    t.alloc(f"out {tag}", s.matrix(rows, fan_out))
    return f"out {tag}"


def goodness(t: Timeline, i: object, rows: int, spec: CellSpec, s: Sizes) -> None:
    """norm (rows,) -> square [-> / hidden]: no (rows, hidden) tensor; the norm goes at once.
    The same with grad, where training runs (Relu)SumOfSquares, which saves only its input."""
    divided = DIVIDED_BY_WIDTH[spec.goodness]
    square = f"norm^2 {i}" if divided else f"goodness {i}"
    t.alloc(f"norm {i}", s.matrix(rows, 1))
    t.alloc(square, s.matrix(rows, 1))
    t.free(f"norm {i}")
    if divided:
        t.alloc(f"goodness {i}", s.matrix(rows, 1))
        t.free(square)


def ff_loss(t: Timeline, i: object, rows: int, s: Sizes) -> None:
    """softplus(-(g - theta)[:B]).sum() + softplus((g - theta)[B:]).sum(), over rows.

    Kept for backward: the margin (under the negative half's view) and -margin[:B]."""
    half, scalar = s.matrix(rows // 2, 1), s.element_bytes
    t.alloc(f"margin {i}", s.matrix(rows, 1))
    t.alloc(f"-margin {i}", half)
    t.alloc(f"softplus+ {i}", half)
    t.alloc(f"sum+ {i}", scalar)
    t.free(f"softplus+ {i}")
    t.alloc(f"softplus- {i}", half)
    t.alloc(f"sum- {i}", scalar)
    t.free(f"softplus- {i}")
    t.alloc(f"sum {i}", scalar)
    t.alloc(f"loss {i}", scalar)  # returned detached: kept in train_step's list
    t.free(f"sum {i}", f"goodness {i}", f"sum+ {i}", f"sum- {i}")


def ff_loss_backward(t: Timeline, i: object, rows: int, s: Sizes) -> str:
    """Down to the goodness: returns the name of its (rows,) gradient."""
    half, scalar = s.matrix(rows // 2, 1), s.element_bytes
    t.alloc(f"grad root {i}", scalar)
    t.alloc(f"grad sum {i}", scalar)  # DivBackward
    t.alloc(f"grad softplus- {i}", half)
    t.free(f"margin {i}")
    t.alloc(f"grad margin- {i}", s.matrix(rows, 1))  # slice_backward
    t.free(f"grad softplus- {i}")
    t.alloc(f"grad softplus+ {i}", half)
    t.free(f"grad sum {i}", f"-margin {i}")
    t.alloc(f"grad -margin {i}", half)  # NegBackward
    t.free(f"grad softplus+ {i}")
    t.alloc(f"grad margin+ {i}", s.matrix(rows, 1))
    t.free(f"grad -margin {i}")
    t.alloc(f"grad goodness {i}", s.matrix(rows, 1))  # the two slices' gradients summed
    t.free(f"grad margin- {i}", f"grad margin+ {i}")
    return f"grad goodness {i}"


def relu_backward(t: Timeline, i: object, grad: str, out: str, rows: int, hidden: int,
                  s: Sizes) -> str:
    """threshold_backward; ReLU's saved output goes with it (unless kept elsewhere: `out` None)."""
    t.alloc(f"grad relu {i}", s.matrix(rows, hidden))
    t.free(grad, *([out] if out else []))
    return f"grad relu {i}"


def fused_backward(t: Timeline, i: object, grad: str, spec: CellSpec, s: Sizes) -> str:
    """[/ hidden's backward,] then (Relu)SumOfSquares': 2 * grad (rows,) and the one
    (rows, hidden) gradient h * 2 grad (of the Linear's output, or of rff's state);
    returns its name."""
    rows = 2 * spec.batch_size
    row = s.matrix(rows, 1)
    if DIVIDED_BY_WIDTH[spec.goodness]:
        t.alloc(f"grad sum of squares {i}", row)
        t.free(grad)
        grad = f"grad sum of squares {i}"
    t.alloc(f"2 grad {i}", row)
    t.alloc(f"grad h {i}", s.matrix(rows, spec.hidden))
    t.free(f"2 grad {i}", grad)
    return f"grad h {i}"



def local_loss(t: Timeline, i: object, rows: int, spec: CellSpec, s: Sizes) -> str:
    """A layer's goodness and FF loss, and their backward down to the (rows, hidden)
    gradient of what the goodness was taken of (ff: the Linear's output; rff: the state)."""
    goodness(t, i, rows, spec, s)
    ff_loss(t, i, rows, s)
    return fused_backward(t, i, ff_loss_backward(t, i, rows, s), spec, s)

def train_layer(t: Timeline, i: int, spec: CellSpec, params: list[Param], s: Sizes) -> None:
    """Trained with ReLU and goodness fused (ForwardForward.layer_and_goodness); the ReLU
    output stays after the step: it is the next layer's input."""
    rows = 2 * spec.batch_size
    widths = layer_widths(spec)[i]
    layer_forward(t, i, rows, widths, s)
    grad = local_loss(t, i, rows, spec, s)
    # the input is detached: no input gradient; the normalized input goes with the graph
    linear_backward(t, f"{i}.linear", grad, (rows, *widths), s, input_grad=False)
    t.free(f"normalized {i}", f"grad root {i}")
    adam_step(t, params)
    zero_grad(t, params)


def train_step(t: Timeline, spec: CellSpec, s: Sizes) -> None:
    load_batch(t, spec.batch_size, s)
    positive_and_negative(t, spec.batch_size, s)
    for i, params in enumerate(layer_params(spec, s)):
        train_layer(t, i, spec, params, s)
        t.free("h" if i == 0 else f"out {i - 1}")  # h = out.detach(): the layer below's goes
    t.alloc("stacked losses", spec.n_layers * s.element_bytes)


def images_per_chunk(spec: CellSpec, images: int) -> int:
    """ForwardForward.predict: eval_chunk bounds replicated rows; 0 means all at once."""
    return max(1, spec.eval_chunk // MNIST_CLASSES) if spec.eval_chunk else images


# One chunk of an eval batch: (timeline, chunk index, images in the chunk, spec, sizes).
Chunk = Callable[[Timeline, int, int, CellSpec, Sizes], None]


def predict_in_chunks(t: Timeline, spec: CellSpec, s: Sizes, chunk: Chunk) -> None:
    """The eval batch (x only) in chunks of `images_per_chunk`; the chunks' argmax concatenated."""
    assert spec.eval_batch_size is not None
    images = spec.eval_batch_size
    load_batch(t, images, s)
    t.free("y")  # predict gets x only
    per_chunk = images_per_chunk(spec, images)
    for c, start in enumerate(range(0, images, per_chunk)):
        chunk(t, c, min(per_chunk, images - start), spec, s)
    t.alloc("predictions", images * INT64_BYTES)  # torch.cat of the chunks' argmax


def predict(t: Timeline, spec: CellSpec, s: Sizes, streamed: frozenset[int] = frozenset()) -> None:
    """ForwardForward.predict; layers in `streamed` have their weights copied in per call."""
    predict_in_chunks(t, spec, s, partial(predict_chunk, streamed=streamed))


def candidate_labels(t: Timeline, c: int, rows: int) -> str:
    """arange(classes) repeated for each image: (rows,) int64; returns its name."""
    t.alloc(f"arange {c}", MNIST_CLASSES * INT64_BYTES, "eval_replication")
    t.alloc(f"candidate labels {c}", rows * INT64_BYTES, "eval_replication")
    t.free(f"arange {c}")
    return f"candidate labels {c}"


def replicate_per_class(t: Timeline, c: int, images: int, s: Sizes) -> None:
    """Each image once per class, with that class embedded: (images * classes, 784)."""
    rows = images * MNIST_CLASSES
    labels = candidate_labels(t, c, rows)
    t.alloc(f"replicated {c}", s.matrix(rows, MNIST_PIXELS), "eval_replication")
    t.free(labels)


def frozen_layer(t: Timeline, tag: str, rows: int, widths: tuple[int, int], s: Sizes,
                 streamed_weights: bool = False) -> str:
    """relu(linear(normalize(h))) without grad: each temporary goes once used; returns the
    output's name. `streamed_weights`: the layer's weights are copied to the device for it."""
    copies = linear_params(f"copy {tag}", *widths, s) if streamed_weights else []
    for p in copies:
        t.alloc(p.name, p.nbytes, "parameters")
    out = layer_forward(t, tag, rows, widths, s)
    t.free(f"normalized {tag}", *(p.name for p in copies))
    return out


def predict_chunk(t: Timeline, c: int, images: int, spec: CellSpec, s: Sizes,
                  streamed: frozenset[int]) -> None:
    """Score += goodness from `readout_from_layer` on; the chunk's argmax stays for the cat."""
    rows = images * MNIST_CLASSES
    readout_from = min(int(spec.options["readout_from_layer"]), spec.n_layers - 1)
    replicate_per_class(t, c, images, s)
    t.alloc(f"score {c}", s.matrix(rows, 1))
    previous = f"replicated {c}"
    for i, widths in enumerate(layer_widths(spec)):
        out = frozen_layer(t, f"{c}.{i}", rows, widths, s, streamed_weights=i in streamed)
        t.free(previous)
        previous = out
        if i >= readout_from:
            goodness(t, i, rows, spec, s)
            t.free(f"goodness {i}")  # added into score in place
    t.alloc(f"argmax {c}", images * INT64_BYTES)
    t.free(previous, f"score {c}")
