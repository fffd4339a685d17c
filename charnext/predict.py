"""Per-step predictions for a prefix, and generation that carries the state forward."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from charnext.config import SampleConfig
from charnext.model import CharModel
from charnext.vocab import Vocab


@dataclass
class StepPrediction:
    """What the model predicts after reading one input character."""

    input: str  # the character read at this step
    predicted: str  # the most likely next character
    probability: float  # its probability
    top: list[tuple[str, float]] = field(default_factory=list)  # k most likely, best first
    target: str | None = None  # the actual next character, where known


@torch.no_grad()
def predict_steps(model: CharModel, vocab: Vocab, prefix: str, top_k: int = 3) -> list[StepPrediction]:
    """Feed `prefix` and report the prediction after every character (one forward pass)."""
    if not prefix:
        return []
    device = model.head.weight.device
    idx = vocab.encode(prefix).long().to(device)[None]  # (1, T)
    k = max(1, min(top_k, len(vocab)))
    with small_work(model, idx.numel()):
        logits, _ = model(idx)
        probs = torch.softmax(logits[0].float(), dim=-1)  # (T, V)
        top_p, top_i = probs.topk(k, dim=-1)  # (T, k)
    steps = []
    for t, ch in enumerate(prefix):
        top = [(vocab.chars[i], p) for i, p in zip(top_i[t].tolist(), top_p[t].tolist())]
        target = prefix[t + 1] if t + 1 < len(prefix) else None
        steps.append(StepPrediction(ch, top[0][0], top[0][1], top, target))
    return steps


SMALL_WORK = 8_000_000  # multiply-adds of a forward call below which one CPU thread is fastest


@contextmanager
def small_work(model: CharModel, positions: int) -> Iterator[None]:
    """Settings for a small forward call on the CPU (`positions` = batch x characters), such as
    one generated character or a short prefix; restored right after the call.

    A small call (about one multiply-add per parameter and position) runs on one thread: it is
    over before a second thread helps, and where the cores are busy with other work, waiting
    for one costs far more (0.8 ms a generated character on one thread against 94 ms on two,
    measured on a loaded 2-core machine). And it uses PyTorch's own RNN kernels rather than
    oneDNN's, which lay the weights out anew on every call (megabytes for a 2x256 LSTM, a page
    fault per 4 KiB): paid once over a long window, but more than the step itself one character
    at a time (3,000 characters took 9.6 s with oneDNN and 2.4 s without, measured).
    """
    if model.head.weight.device.type != "cpu" or positions * model.num_parameters() >= SMALL_WORK:
        yield
        return
    mkldnn, threads = torch.backends.mkldnn, torch.get_num_threads()
    was_enabled = mkldnn.enabled
    mkldnn.enabled = False
    torch.set_num_threads(1)
    try:
        yield
    finally:
        mkldnn.enabled = was_enabled
        torch.set_num_threads(threads)


def _choose(logits: torch.Tensor, sample: SampleConfig, generator: torch.Generator | None) -> torch.Tensor:
    """logits (N, V) -> chosen indices (N,)."""
    if sample.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / sample.temperature
    if sample.top_k:
        kth = logits.topk(min(sample.top_k, logits.size(-1)), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if sample.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # keep the smallest set whose mass reaches top_p (the first character always stays)
        drop = sorted_p.cumsum(dim=-1) - sorted_p >= sample.top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)


@torch.no_grad()
def generate(
    model: CharModel,
    vocab: Vocab,
    prefix: str,
    length: int,
    sample: SampleConfig | None = None,
    num_samples: int = 1,
    stop: str | None = None,
) -> Iterator[list[str]]:
    """Yield, `length` times, the next character of each of `num_samples` continuations.

    The prefix is read once; afterwards each step feeds one character and carries the state,
    so every generated character costs the same. With a `stop` character (line mode) the
    prefix is read after `stop`, from the zero state, as line-mode models are trained; an empty
    prefix without one starts from a uniform first character. Continuations that produced
    `stop` keep yielding "".
    """
    sample = sample or SampleConfig()
    device = model.head.weight.device
    generator = torch.Generator().manual_seed(sample.seed) if sample.seed is not None else None
    n = num_samples
    boundary = stop if stop and stop in vocab else ""
    start = prefix if boundary and prefix.startswith(boundary) else boundary + prefix
    if start:
        idx = vocab.encode(start).long().to(device)[None].expand(n, -1)  # (n, T)
        with small_work(model, idx.numel()):
            logits, state = model(idx)
        last = logits[:, -1]  # (n, V)
    else:
        state = None
        last = torch.zeros(n, len(vocab), device=device)  # uniform first character
    done = torch.zeros(n, dtype=torch.bool)
    stop_idx = vocab.chars.index(stop) if stop and stop in vocab else -1
    if length < 1:
        return
    with small_work(model, n):
        nxt = _choose(last, sample, generator)  # (n,)
    for step in range(length):
        chars = [vocab.chars[i] if not d else "" for i, d in zip(nxt.tolist(), done.tolist())]
        yield chars
        if stop_idx >= 0:
            done |= nxt.cpu() == stop_idx
            if bool(done.all()):
                return
        if step == length - 1:
            return  # nothing more to predict: do not feed the last character
        with small_work(model, n):
            logits, state = model(nxt[:, None], state)  # (n, 1, V): one character, state carried
            nxt = _choose(logits[:, -1], sample, generator)
