"""Around the loop: the model's memory checked before it is built, weights copied in from another
model, Ctrl-C turned into a clean stop, and the optimizer step itself.

The step takes the `charnext.training.trainer.Trainer` whose step it is (not imported here:
the trainer imports this module).
"""

from __future__ import annotations

import math
import os
import signal
from contextlib import contextmanager

import torch

from charnext.errors import ConfigError
from charnext.modeling.device import autocast
from charnext.modeling.loss import sequence_loss
from charnext.modeling.model import CharModel, ModelConfig
from charnext.training import distributed
from charnext.training.planner import parameters


def optimizer_step(trainer, lr: float) -> tuple[float, float, bool]:
    """One optimizer step; returns (loss, accuracy) of its (global) batch, and whether the
    update was applied.

    A step whose gradients are not finite (an overflow, e.g. under bf16) is skipped: the
    weights, the optimizer and the carried state stay as they were.
    """
    batch = trainer.corpus.batch(trainer.step)
    x = batch.x.to(trainer.device, non_blocking=True).long()
    y = batch.y.to(trainer.device, non_blocking=True).long()
    weights = batch.weights.to(trainer.device) if batch.weights is not None else None
    state = None if batch.reset else trainer.carried
    if state is not None and batch.cold is not None and batch.cold.any():
        state = state * (~batch.cold).to(state.device, state.dtype)[None, :, None]  # (L, B, S)
    for group in trainer.optimizer.param_groups:
        group["lr"] = lr
    with autocast(trainer.device, trainer.precision):
        logits, new_state = trainer.net(x, state)
    loss = sequence_loss(logits, y, weights)
    mean_loss = loss
    if trainer.world > 1 and weights is not None:
        # DDP averages the processes' gradients. Padded line batches give processes
        # different numbers of real positions, so weigh each one's mean by its share of
        # the global batch: the update is then exactly one process's on the whole batch.
        real = weights.sum()
        total = distributed.all_sum(real, trainer.world)
        loss = loss * (real * trainer.world / total[0])
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    # the gradient norm is the same in every process (DDP has averaged the gradients), so
    # all of them skip the same steps
    max_norm = trainer.config.grad_clip or math.inf
    norm = torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), max_norm)
    applied = bool(torch.isfinite(norm))
    if applied:
        trainer.optimizer.step()
        if trainer.corpus.carries_state:
            trainer.carried = new_state.detach()
    else:
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.record.skipped_steps += 1
    with torch.no_grad():
        hits = (logits.argmax(-1) == y).float()
        accuracy = (
            float((hits * weights).sum() / weights.sum()) if weights is not None else float(hits.mean())
        )
    if trainer.world > 1:  # report the whole global batch, as one process would
        real = float(weights.sum()) if weights is not None else float(y.numel())
        loss_value, accuracy = distributed.weighted_mean([mean_loss.item(), accuracy], real, trainer.world)
        return loss_value, accuracy, applied
    return loss.item(), accuracy, applied


# float32 copies of the weights a CPU run holds at once: the weights, their gradients and AdamW's
# two moments
TRAINING_COPIES = 4


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


@contextmanager
def stop_on_sigint(trainer):
    """While active, the first Ctrl-C asks `trainer` to stop cleanly after the current step;
    a second one interrupts at once."""

    def handler(signum, frame):  # noqa: ARG001
        if trainer._stop_requested:
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
