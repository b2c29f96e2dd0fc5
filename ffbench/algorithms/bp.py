"""Backprop baseline: the FF hidden stack with a linear head, cross-entropy, one optimizer.

Three options save memory without changing what is computed:

- `checkpoint_segments` k > 0: the hidden stack runs as k near-equal segments, each but the
  last under `torch.utils.checkpoint` (non-reentrant), as `checkpoint_sequential` does: only
  a segment's input is kept through the forward, and its activations are recomputed when the
  backward reaches it (one extra forward of those layers). k = 0 or 1 checkpoints nothing.
- `fused_step`: one optimizer per parameter, stepped from the parameter's
  post-accumulate-grad hook during the backward, its gradient freed at once; the gradients of
  all layers are never alive together.
- `offload_activations`: what autograd saves for the backward (the ReLU outputs, the
  log-softmax; with checkpointing, the segments' inputs) goes to host memory during the
  forward and comes back when the backward needs it (algorithms/offload.py); the device
  holds a few (B, hidden) blocks at a time instead of one per layer. On `--device cpu` host
  and device are one memory: nothing would be saved, so nothing is moved (no hooks run), and
  the cell is the same as without the option.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ffbench.algorithms import account
from ffbench.algorithms.account import MemoryAccount
from ffbench.algorithms.base import Algorithm, linear_stack, make_optimizer, matmul_flops
from ffbench.algorithms.offload import offloaded
from ffbench.errors import BadInput
from ffbench.settings.cell import MNIST_CLASSES, MNIST_PIXELS, CellSpec


def segment_bounds(n_layers: int, segments: int) -> list[int]:
    """Layer indices where each of `segments` near-equal segments starts, then n_layers."""
    segments = max(1, min(segments, n_layers))
    return [round(i * n_layers / segments) for i in range(segments + 1)]


def run_layers(layers: Sequence[nn.Linear], x: Tensor) -> Tensor:
    for layer in layers:
        x = F.relu(layer(x), inplace=True)  # (B, hidden); the Linear's backward needs no output
    return x


class MLP(nn.Module):
    def __init__(
        self, hidden: int, n_layers: int, device: torch.device, dtype: torch.dtype,
        segments: int = 0,
    ) -> None:
        super().__init__()
        self.linears = linear_stack(MNIST_PIXELS, hidden, n_layers, device, dtype)
        self.layers = nn.ModuleList(self.linears)
        self.head = nn.Linear(hidden, MNIST_CLASSES, device=device, dtype=dtype)
        bounds = segment_bounds(n_layers, segments)
        self.segments = [self.linears[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    @property
    def checkpointed(self) -> list[nn.Linear]:
        """The layers whose forward runs twice in a train step (all segments but the last)."""
        return [layer for segment in self.segments[:-1] for layer in segment]

    def forward(self, x: Tensor) -> Tensor:
        if not torch.is_grad_enabled():  # no graph, nothing to save: predict runs plainly
            return self.head(run_layers(self.linears, x))
        for segment in self.segments[:-1]:
            x = checkpoint(run_layers, segment, x, use_reentrant=False)
        return self.head(run_layers(self.segments[-1], x))  # (B, classes) logits


HOST_DEVICE_NOTE = (
    "offload_activations on the cpu device: host and device are one memory, so offloading "
    "would save nothing; nothing is moved and the peak is the same as without the option"
)


def offloaded_rows(n_layers: int, bounds: Sequence[int]) -> int:
    """ReLU outputs (B, hidden each) a forward moves to host memory: the inputs of the
    checkpointed segments but the first (that one is the batch, which stays), and each
    output of the last, plain segment, with its input."""
    last_start = bounds[-2]
    return len(set(bounds[1:-1]) | set(range(max(last_start, 1), n_layers + 1)))


def offload_account(spec: CellSpec, bounds: Sequence[int], hidden: list[list[int]],
                    fused: bool, held: dict[str, int]) -> MemoryAccount:
    """bp's account when its saved activations are offloaded (`offload_activations` on a
    device other than the host). On the device in backward, layer by layer (m from the top):
    through ReLU m, the saved rows brought back (its output; in a checkpointed segment the
    segment's input and its recomputed outputs up to m), the ReLU's gradient and the
    gradient of its input; through Linear m, the saved rows below m (its input), the
    gradient reaching it, the gradient of its input (none for the first layer: the batch
    needs none) and its weight and bias gradients being made; fused, layer m's weight step
    right after, with its input still on the device when the ReLU below saved it too (the
    device copy serves both), the gradient of its input, its gradient and the step's
    temporaries. Gradients of the layers above unless fused; the optimizer step unless
    fused; loss and its gradient. `offloaded_bytes`: the rows of `offloaded_rows` and the
    log-softmax (B, classes), copied to the host in the forward and back in the backward."""
    head = account.linear(spec.hidden, MNIST_CLASSES, spec)
    e, row = account.element_bytes(spec), account.matrix(spec.batch_size, spec.hidden, spec)
    params = [size for layer in hidden for size in layer] + head
    last = len(bounds) - 2  # the plain segment's index; the ones below it are checkpointed
    moments = []  # in the backward's order (the tracker keeps the first of equal peaks)
    for index in reversed(range(len(bounds) - 1)):
        start, stop = bounds[index], bounds[index + 1]
        recomputed = index < last
        kept = int(recomputed and start > 0)  # the segment's input, back for its recompute
        for m in reversed(range(start + 1, stop + 1)):  # 1-based layer numbers
            below = m - 1 - start  # this segment's outputs below layer m
            at_relu = kept + below + 1 if recomputed else 1
            at_linear = kept + below if recomputed else int(m > 1)
            input_grad = int(m > 1)
            above = sum(head) + sum(sum(layer) for layer in hidden[m:])
            gradients = 0 if fused else above
            moments += [
                MemoryAccount.of(f"backward through ReLU {m}", gradients=gradients,
                                 activations=(at_relu + 2) * row + 2 * e, **held),
                MemoryAccount.of(f"backward through Linear {m}", gradients=gradients,
                                 activations=(at_linear + 1 + input_grad) * row
                                 + sum(hidden[m - 1]) + 2 * e, **held),
            ]
            if fused:
                weight = hidden[m - 1][0]
                still_there = at_linear if below > 0 else 0
                moments.append(MemoryAccount.of(
                    f"layer {m}'s weight step in backward", gradients=weight,
                    activations=(still_there + input_grad) * row
                    + account.step_temporaries([weight], spec) + 2 * e, **held))
    if not fused:
        moments.append(MemoryAccount.of(
            "the optimizer step", gradients=sum(params),
            activations=account.step_temporaries(params, spec) + e, **held))
    rows = offloaded_rows(spec.n_layers, bounds)
    offloaded = rows * row + account.matrix(spec.batch_size, MNIST_CLASSES, spec)
    note = (f"saved activations in host memory: {rows} ReLU outputs ({spec.batch_size}, "
            f"{spec.hidden}) and the log-softmax ({spec.batch_size}, {MNIST_CLASSES}), "
            "copied there during the forward and back during the backward; the device "
            "peak excludes them")
    return dataclasses.replace(account.largest(moments), offloaded_bytes=offloaded,
                               notes={"offload": note})


def _fused_layer_moments(hidden: list[list[int]], bounds: Sequence[int], row_block: int,
                         e: int, spec: CellSpec, held: dict[str, int]) -> list[MemoryAccount]:
    """Fused steps, layer by layer. Layer l's backward makes the gradients of its input, its
    weight and its bias; its saved tensors and its output's gradient are released, then the
    bias is stepped (the weight's gradient not yet accumulated), then the weight. Alive
    besides (B, hidden) each: the inputs of the checkpointed segments below l's, its own
    segment's input while a layer of it still holds it (a checkpointed segment holds it
    through its backward), the segment's outputs below l, and the gradient of l's input
    (none for the first layer). The loss and its gradient throughout."""
    moments = []
    last = len(bounds) - 2  # the last segment, the one not checkpointed
    for layer, (weight, bias) in enumerate(hidden):
        segment = max(index for index, start in enumerate(bounds[:-1]) if start <= layer)
        start = bounds[segment]
        holds_input = segment >= 1 and (layer > start or segment < last)
        alive = (max(segment - 1, 0) + holds_input + (layer - start)
                 + (1 if layer else 0))
        released = segment >= 1 and layer == start and segment == last  # after the backward
        moments += [
            MemoryAccount.of(
                f"layer {layer}'s gradients made", activations=(alive + released + 1)
                * row_block + weight + bias + 2 * e, **held),
            MemoryAccount.of(
                f"layer {layer}'s fused bias step", gradients=bias,
                activations=alive * row_block + weight
                + account.step_temporaries([bias], spec) + 2 * e, **held),
            MemoryAccount.of(
                f"layer {layer}'s fused weight step", gradients=weight,
                activations=alive * row_block + account.step_temporaries([weight], spec)
                + 2 * e, **held),
        ]
    return moments


class Backprop(Algorithm):
    name = "bp"
    display_name = "backprop"
    summary = (
        "backprop baseline: the same hidden stack, linear head, cross-entropy, one optimizer; "
        "checkpoint_segments=k recomputes k-1 of k segments, fused_step=true steps each "
        "parameter during the backward, offload_activations=true keeps saved activations in "
        "host memory"
    )
    default_lr = 1e-3
    options: ClassVar[Mapping[str, Any]] = {
        "checkpoint_segments": 0, "fused_step": False, "offload_activations": False}
    late_options: ClassVar[tuple[str, ...]] = (
        "checkpoint_segments", "fused_step", "offload_activations")
    layer_options: ClassVar[Mapping[str, int]] = {"checkpoint_segments": 0}  # <= n_layers
    preset_settings = {
        "published": {"batch_size": 5000},  # all 5000 real images of the published batch
        "mnist-5k-accuracy": {
            "n_layers": 2, "hidden": 1000, "batch_size": 100, "epochs": 20, "lr": 1e-3,
        },
    }
    accuracy_target: ClassVar[float | None] = 0.94
    gradient_note = "the peak is in backward, before the lower layers' gradients are made"
    baseline = True  # and so are its variants (bp-lean): the verdict's backprops

    def __init__(self, spec: CellSpec, device: torch.device) -> None:
        super().__init__(spec, device)
        self.model = self.mlp = model = MLP(
            spec.hidden, spec.n_layers, device, self.dtype, self.checkpoint_segments(spec)
        )
        self.linears = [*model.linears, model.head]
        params = list(self.model.parameters())
        self.fused = bool(spec.options.get("fused_step", False))
        if self.fused:
            self.optimizers = [make_optimizer([p], spec) for p in params]
            for p, optimizer in zip(params, self.optimizers, strict=True):
                p.register_post_accumulate_grad_hook(self._stepper(optimizer))
        else:
            self.optimizers = [make_optimizer(params, spec)]
        self.offloading = self.offloads(spec)

    @classmethod
    def check(cls, options: Mapping[str, Any]) -> None:
        if options["checkpoint_segments"] < 0:
            raise BadInput(
                "option checkpoint_segments must be 0 or more, "
                f"got {options['checkpoint_segments']}"
            )

    @classmethod
    def checkpoint_segments(cls, spec: CellSpec) -> int:
        """Segments the hidden stack is checkpointed over (0: none)."""
        return int(spec.options.get("checkpoint_segments", 0))

    @classmethod
    def offloads(cls, spec: CellSpec) -> bool:
        """Whether saved activations go to host memory: with the option, on any device but
        the host itself (`--device cpu`: one memory, nothing to gain; a meta prediction of a
        cpu cell models the cpu cell)."""
        option = bool(spec.options.get("offload_activations", False))
        return option and not account.host_measured(spec)

    def _saving(self) -> AbstractContextManager[None]:
        """Where the forward's saved tensors are kept: host memory when offloading."""
        return offloaded(self.device) if self.offloading else nullcontext()

    @staticmethod
    def _stepper(optimizer: torch.optim.Optimizer) -> Callable[[Tensor], None]:
        def step(_: Tensor) -> None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return step

    @classmethod
    def memory_account(cls, spec: CellSpec) -> MemoryAccount:
        """The largest of these moments. In the optimizer step (not fused): every gradient,
        the step's temporaries and the loss (backward freed every ReLU output). In backward
        through the top layer of each segment (one segment: the whole stack; checkpointed:
        each earlier segment recomputed): the gradients of the layers above it (none when
        fused: each is freed by its step), the checkpoints kept below it, the segment's own
        ReLU outputs but its top one, the top ReLU's gradient and the gradient of its input
        (B, hidden each); loss and its gradient. In backward through the first layer: its
        gradients being made, over the one reaching it. Fused: the largest parameter's step,
        its gradient and the step's temporaries. Offloading: `offload_account`."""
        head = account.linear(spec.hidden, MNIST_CLASSES, spec)
        hidden = [account.linear(fan_in, fan_out, spec)
                  for fan_in, fan_out in account.hidden_widths(spec)]
        params = [size for layer in hidden for size in layer] + head
        e, row_block = account.element_bytes(spec), account.matrix(
            spec.batch_size, spec.hidden, spec)
        held = {
            "parameters": sum(params),
            "optimizer_state": account.optimizer_state(params, spec),
            "inputs": account.batch(spec.batch_size, spec),
        }
        fused = bool(spec.options.get("fused_step", False))
        bounds = segment_bounds(spec.n_layers, cls.checkpoint_segments(spec))
        if cls.offloads(spec):
            return offload_account(spec, bounds, hidden, fused, held)
        moments = []
        if fused:
            largest = max(params)
            moments.append(MemoryAccount.of(
                "the largest parameter's fused step", gradients=largest,
                activations=account.step_temporaries([largest], spec) + 2 * e, **held,
            ))
            moments += _fused_layer_moments(hidden, bounds, row_block, e, spec, held)
        else:
            moments.append(MemoryAccount.of(
                "the optimizer step", gradients=sum(params),
                activations=account.step_temporaries(params, spec) + e, **held,
            ))
        first = sum(hidden[0])  # the first layer's gradients, made before they are stored
        moments.append(MemoryAccount.of(
            "backward through the first layer", gradients=0 if fused else sum(params) - first,
            activations=first + row_block + 2 * e, **held,
        ))
        for index in range(len(bounds) - 1):
            start, stop = bounds[index], bounds[index + 1]
            above = head + [size for layer in hidden[stop:] for size in layer]
            kept = index  # inputs of segments 1..index (segment 0's is the batch itself)
            outputs = stop - start  # this segment's ReLU outputs (the top one's input kept)
            moments.append(MemoryAccount.of(
                f"backward through layer {stop}", gradients=0 if fused else sum(above),
                activations=(kept + outputs + 2) * row_block + 2 * e, **held,
            ))
        peak = account.largest(moments)
        if spec.options.get("offload_activations"):  # on the host device: see `offloads`
            return dataclasses.replace(peak, notes={"offload": HOST_DEVICE_NOTE})
        return peak

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        with self._saving():
            loss = F.cross_entropy(self.model(x), y)
        loss.backward()  # fused: every parameter stepped and its gradient freed in here
        if not self.fused:
            (optimizer,) = self.optimizers
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        return self.model(x).argmax(dim=1)

    def train_flops_per_step(self) -> int:
        # forward, grad of weights, grad of inputs (none for the first layer: x needs no grad),
        # and the checkpointed segments' forward again
        rows = self.spec.batch_size
        recomputed = matmul_flops(rows, self.mlp.checkpointed)
        return (
            2 * matmul_flops(rows, self.linears) + matmul_flops(rows, self.linears[1:])
            + recomputed
        )

    def eval_flops_per_batch(self) -> int:
        assert self.spec.eval_batch_size is not None
        return matmul_flops(self.spec.eval_batch_size, self.linears)


ALGORITHM = Backprop
