"""The next character: the one place that draws it (temperature, top-k, top-p, seed), and
generation, which carries the state forward one drawn character at a time.

The draw is numpy code shared by both engines, so the same seed gives the same text on either
wherever their probabilities agree. predict, generation, training previews, the report and
play all draw here, from PCG32 (charnext.inference.pcg32), as the model's web page does.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import numpy as np

from charnext.config import SampleConfig
from charnext.inference.pcg32 import Pcg32, Pcg32Rows
from charnext.inference.steps import NEWLINE, Readable, read

__all__ = ["SampleConfig", "Sampler", "choose", "choose_each", "generate", "stream_rng"]


def choose(logits: np.ndarray, sample: SampleConfig, rngs: list[Pcg32] | Pcg32Rows) -> np.ndarray:
    """logits (N, V) -> chosen indices (N,): greedy at temperature 0, else drawn from the
    distribution at that temperature, cut to the top k and the top-p mass, row i with one
    uniform draw from `rngs[i]` (charnext/inside/web/charnext.js's `choose` is the same steps)."""
    if sample.temperature == 0:
        return logits.argmax(axis=-1)
    z = np.multiply(logits, 1.0 / sample.temperature, dtype=np.float64)
    V = z.shape[-1]
    if sample.top_k and sample.top_k < V:
        kth = np.partition(z, V - sample.top_k, axis=-1)[:, V - sample.top_k, None]
        z[z < kth] = -np.inf
    z -= z.max(axis=-1, keepdims=True)
    p = np.exp(z)  # unnormalised: the draw below scales by the total
    if sample.top_p < 1.0:
        p /= p.sum(axis=-1, keepdims=True)
        order = np.argsort(-p, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(p, order, axis=-1)
        # keep the smallest set whose mass reaches top_p (the first character always stays)
        sorted_p[np.cumsum(sorted_p, axis=-1) - sorted_p >= sample.top_p] = 0.0
        np.put_along_axis(p, order, sorted_p, axis=-1)
    cdf = np.cumsum(p, axis=-1)  # (N, V)
    u = uniforms(rngs, len(cdf)) * cdf[:, -1]  # uniform in [0, total)
    # the first index whose cdf passes u: a character of probability 0 never is one
    chosen = (cdf <= u[:, None]).sum(axis=-1)
    if chosen.max() >= V:  # u rounded up to the total: take the last possible character
        chosen = np.minimum(chosen, V - 1 - (p[:, ::-1] > 0).argmax(axis=-1))
    return chosen


def uniforms(rngs: list[Pcg32] | Pcg32Rows, count: int) -> np.ndarray:
    """One uniform number in [0, 1) from each of the first `count` generators."""
    if isinstance(rngs, Pcg32Rows):
        return rngs.random(count)
    return np.array([rng.random() for rng in rngs[:count]])


def stream_rng(seed: int, stream: int) -> Pcg32:
    """The generator of one independent stream: PCG32 stream `stream` of `seed` (sample i of
    `predict --seed S` is stream i)."""
    return Pcg32(seed, stream)


def choose_each(logits: np.ndarray, samples: list[SampleConfig], rngs: list[Pcg32]) -> np.ndarray:
    """logits (N, V) -> chosen indices (N,), row i with `samples[i]` and `rngs[i]`: rows with the
    same settings drawn together (the draw of each row is its own either way)."""
    chosen = np.empty(len(logits), dtype=np.intp)
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault((s.temperature, s.top_k, s.top_p), []).append(i)
    for rows in groups.values():
        chosen[rows] = choose(logits[rows], samples[rows[0]], [rngs[i] for i in rows])
    return chosen


# Rows from which a Sampler steps its generators together as numpy arrays (Pcg32Rows): below,
# a Python generator a row is faster (one row: about 1 microsecond against 10).
ROWS_AT_ONCE = 8


class Sampler:
    """Draws next characters with one SampleConfig: row i of the batch from PCG32's stream i of
    the config's seed (None: a fresh seed, not reproducible), so the first sample of a batch is
    the text of that seed alone, and the web page's."""

    def __init__(self, sample: SampleConfig | None = None):
        self.sample = sample or SampleConfig()
        self.seed = self.sample.seed if self.sample.seed is not None else secrets.randbits(64)
        self.rngs: list[Pcg32] | Pcg32Rows = []  # row i: stream i of the seed

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        """logits (N, V) -> chosen indices (N,)."""
        if len(self.rngs) < len(logits):
            more = [Pcg32(self.seed, i) for i in range(len(self.rngs), len(logits))]
            joined = self.rngs + more if isinstance(self.rngs, list) else self.rngs.join(Pcg32Rows(more))
            self.rngs = joined
        if isinstance(self.rngs, list) and len(self.rngs) >= ROWS_AT_ONCE:
            self.rngs = Pcg32Rows(self.rngs)  # from here on, stepped together (same numbers)
        return choose(logits, self.sample, self.rngs)


def generate(
    model: Readable, prefix: str, length: int, sample: SampleConfig | None = None, num_samples: int = 1
) -> Iterator[list[str]]:
    """Yield, `length` times, the next character of each of `num_samples` continuations.

    The prefix is read once, from the model's start (charnext.inference.steps.read); afterwards
    each step feeds one character per sample, all samples in one batch, and carries the state,
    so every generated character costs the same. With an empty prefix the first character
    follows the start's prime, or is uniform without one. A line model's continuations end at
    their newline: those that produced it keep yielding "".
    """
    runner, vocab = model.runner, model.vocab
    draw = Sampler(sample)
    n = num_samples
    stop = NEWLINE if model.start.lines else None
    logits, state = read(model, prefix, n)
    if logits is not None:
        last = logits[:, -1]  # (n, V)
    else:
        last = np.zeros((n, len(vocab)), dtype=np.float32)  # uniform first character
    done = np.zeros(n, dtype=bool)
    stop_idx = vocab.chars.index(stop) if stop and stop in vocab else -1
    if length < 1:
        return
    chars = vocab.chars
    nxt = draw(last)  # (n,)
    for step in range(length):
        if done.any():
            yield [chars[i] if not d else "" for i, d in zip(nxt.tolist(), done.tolist())]
        else:
            yield [chars[i] for i in nxt.tolist()]
        if stop_idx >= 0:
            done |= nxt == stop_idx
            if done.all():
                return
        if step == length - 1:
            return  # nothing more to predict: do not feed the last character
        logits, state = runner.forward(nxt[:, None], state)  # (n, 1, V): one character, state carried
        nxt = draw(logits[:, -1])
