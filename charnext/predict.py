"""Per-step predictions for a prefix, and generation that carries the state forward."""

from __future__ import annotations

from collections.abc import Iterator
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
    logits, _ = model(idx)
    probs = torch.softmax(logits[0].float(), dim=-1)  # (T, V)
    k = max(1, min(top_k, len(vocab)))
    top_p, top_i = probs.topk(k, dim=-1)  # (T, k)
    steps = []
    for t, ch in enumerate(prefix):
        top = [(vocab.chars[i], p) for i, p in zip(top_i[t].tolist(), top_p[t].tolist())]
        target = prefix[t + 1] if t + 1 < len(prefix) else None
        steps.append(StepPrediction(ch, top[0][0], top[0][1], top, target))
    return steps


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
    so every generated character costs the same. An empty prefix starts from the zero state
    with the first character sampled from the model's prediction after `stop` (line mode) or
    from a uniform start otherwise. Continuations that produced `stop` keep yielding "".
    """
    sample = sample or SampleConfig()
    device = model.head.weight.device
    generator = torch.Generator().manual_seed(sample.seed) if sample.seed is not None else None
    n = num_samples
    start = prefix if prefix else (stop if stop and stop in vocab else "")
    if start:
        idx = vocab.encode(start).long().to(device)[None].expand(n, -1)  # (n, T)
        logits, state = model(idx)
        last = logits[:, -1]  # (n, V)
    else:
        state = None
        last = torch.zeros(n, len(vocab), device=device)  # uniform first character
    done = torch.zeros(n, dtype=torch.bool)
    stop_idx = vocab.chars.index(stop) if stop and stop in vocab else -1
    for _ in range(length):
        nxt = _choose(last, sample, generator)  # (n,)
        chars = [vocab.chars[i] if not d else "" for i, d in zip(nxt.tolist(), done.tolist())]
        yield chars
        if stop_idx >= 0:
            done |= nxt.cpu() == stop_idx
            if bool(done.all()):
                return
        logits, state = model(nxt[:, None], state)
        last = logits[:, -1]
