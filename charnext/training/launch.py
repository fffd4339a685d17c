"""Around the loop, each a plain function of what it is given: the model's memory checked before
it is built, weights copied in from another model, the optimizer step itself, and Ctrl-C turned
into a clean stop."""

from __future__ import annotations

import math
import os
import signal
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from charnext.errors import ConfigError
from charnext.modeling.device import autocast
from charnext.modeling.loss import sequence_loss
from charnext.modeling.model import CharModel, ModelConfig
from charnext.training import distributed
from charnext.training.planner import parameters

# float32 copies of the weights a CPU run holds at once: the weights, their gradients and AdamW's
# two moments
TRAINING_COPIES = 4


@dataclass
class StepResult:
    """What one optimizer step gives back."""

    loss: float  # the (global) batch's mean loss, nats/char
    accuracy: float  # and next-character accuracy
    applied: bool  # whether the update was applied (its gradients were finite)
    state: torch.Tensor | None  # the recurrent state to carry into the next step


def optimizer_step(
    net: torch.nn.Module, model: CharModel, optimizer, batch, carried: torch.Tensor | None, lr: float, *,
    device: torch.device, precision: str, grad_clip: float | None, world: int, carries_state: bool,
) -> StepResult:  # fmt: skip
    """One optimizer step of `net` (the model, wrapped for several processes) on `batch`, from
    the `carried` recurrent state.

    A step whose gradients are not finite (an overflow, e.g. under bf16) is skipped: the
    weights, the optimizer and the carried state stay as they were.
    """
    x = batch.x.to(device, non_blocking=True).long()
    y = batch.y.to(device, non_blocking=True).long()
    weights = batch.weights.to(device) if batch.weights is not None else None
    state = None if batch.reset else carried
    if state is not None and batch.cold is not None and batch.cold.any():
        state = state * (~batch.cold).to(state.device, state.dtype)[None, :, None]  # (L, B, S)
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast(device, precision):
        logits, new_state = net(x, state)
    loss = sequence_loss(logits, y, weights)
    mean_loss = loss
    if world > 1 and weights is not None:
        # DDP averages the processes' gradients. Padded line batches give processes
        # different numbers of real positions, so weigh each one's mean by its share of
        # the global batch: the update is then exactly one process's on the whole batch.
        real = weights.sum()
        total = distributed.all_sum(real, world)
        loss = loss * (real * world / total[0])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    # the gradient norm is the same in every process (DDP has averaged the gradients), so
    # all of them skip the same steps
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip or math.inf)
    applied = bool(torch.isfinite(norm))
    if applied:
        optimizer.step()
        if carries_state:
            carried = new_state.detach()
    else:
        optimizer.zero_grad(set_to_none=True)
    with torch.no_grad():
        hits = (logits.argmax(-1) == y).float()
        accuracy = (
            float((hits * weights).sum() / weights.sum()) if weights is not None else float(hits.mean())
        )
    if world > 1:  # report the whole global batch, as one process would
        real = float(weights.sum()) if weights is not None else float(y.numel())
        loss_value, accuracy = distributed.weighted_mean([mean_loss.item(), accuracy], real, world)
        return StepResult(loss_value, accuracy, applied, carried)
    return StepResult(loss.item(), accuracy, applied, carried)


def check_memory(config: ModelConfig) -> None:
    """Refuse, in one line, a model whose training state cannot fit in this machine's memory
    (`--hidden-size 100000000`), before torch tries and fails to allocate it."""
    c = config
    count = parameters(c.cell, c.hidden_size, c.num_layers, c.vocab_size, c.embedding_size)
    need = count * 4 * TRAINING_COPIES
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: torch will say
        return
    if need > have:
        raise ConfigError(
            f"a {config.num_layers}x{config.hidden_size} {config.cell.value} model with embedding "
            f"{config.embedding_size} has {count:,} parameters, which need about "
            f"{need / 2**30:,.1f} GiB to train; this machine has {have / 2**30:,.1f} GiB"
        )


def copy_overlap(model: CharModel, state_dict: dict) -> None:
    """Load weights, copying the overlapping slice where a vocabulary grew (new rows stay new)."""
    own = model.state_dict()
    for name, src in state_dict.items():
        dst = own[name]
        if dst.shape == src.shape:
            dst.copy_(src)
        else:
            region = tuple(slice(0, min(a, b)) for a, b in zip(dst.shape, src.shape))
            dst[region].copy_(src[region])


def lower(best: float | None, loss: float) -> float | None:
    """The lower of a best loss so far (None: none yet) and a new one; a non-finite one never wins."""
    if not math.isfinite(loss):
        return best
    return loss if best is None or loss < best else best


@contextmanager
def stop_on_sigint(trainer):
    """While active, the first Ctrl-C asks `trainer` (a `charnext.training.trainer.Trainer`)
    to stop cleanly after the current step; a second one interrupts at once."""

    def handler(signum, frame):  # noqa: ARG001
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
