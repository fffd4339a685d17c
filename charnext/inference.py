"""Per-step predictions for a prefix, and generation that carries the state forward.

Both work on a *runner*: anything with `forward(idx, state) -> (logits, state)` taking and
giving numpy arrays (idx (B, T) integers, logits (B, T, vocab)), the state opaque. Two exist:
`charnext.numpy_model.NumpyModel` (no torch) and `TorchRunner` (a torch CharModel, on any
device). The choice of the next character, sampling included, is numpy code shared by both,
so the same seed gives the same text on either engine wherever their probabilities agree.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from charnext.config import Engine, SampleConfig
from charnext.errors import ConfigError
from charnext.vocab import Vocab

if TYPE_CHECKING:
    from charnext.model import CharModel

__all__ = [
    "Runner",
    "SampleConfig",
    "Start",
    "StepPrediction",
    "TorchRunner",
    "generate",
    "predict_steps",
    "read",
]

NEWLINE = "\n"


class Runner(Protocol):
    """A model's forward pass on numpy arrays."""

    def forward(self, idx: np.ndarray, state: Any = None) -> tuple[np.ndarray, Any]: ...


@dataclass
class StepPrediction:
    """What the model predicts after reading one input character."""

    input: str  # the character read at this step
    predicted: str  # the most likely next character
    probability: float  # its probability
    top: list[tuple[str, float]] = field(default_factory=list)  # k most likely, best first
    target: str | None = None  # the actual next character, where known


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities (float64) along the last axis."""
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


@dataclass(frozen=True)
class Start:
    """Where a model starts reading, the same on every engine (the checkpoint's `start` field).

    The rule, in full: read `prime` from the zero state, showing no prediction for it; then the
    text. A line-mode model (`lines`) also returns to the zero state before each newline it
    reads, so that every line is read as training read it: after a newline, from zero.
    """

    prime: str = ""  # read first, from the zero state; its predictions are not shown
    lines: bool = False  # line mode: the state returns to zero before each newline

    @classmethod
    def of(cls, raw: dict) -> Start:
        """The start a checkpoint's fields record. Checkpoints older than the field start as
        they were trained: a line-mode model after a newline, a stream model from zero."""
        lines = bool((raw.get("train_config") or {}).get("lines"))
        start = raw.get("start")
        if isinstance(start, dict) and isinstance(start.get("prime"), str):
            return cls(start["prime"], lines)
        return cls(NEWLINE if lines else "", lines)

    def to_dict(self) -> dict:
        """Plain values, for the checkpoint."""
        return {"prime": self.prime}


def read(
    runner: Runner | CharModel,
    vocab: Vocab,
    text: str,
    start: Start | None = None,
    n: int = 1,
    state: Any = None,
) -> tuple[np.ndarray | None, Any]:
    """Read `text` from `start`, as `n` identical rows: the logits after each character
    (n, len(text), V) and the state after the last. The one place where reading begins:
    predict, generation, evaluate --show, play and the report all call it.

    `state` None begins at the start (the prime first); a state from an earlier call goes on
    from there. With an empty text, the logits are those after the prime (n, 1, V), or None.
    """
    runner = _as_runner(runner)
    start = start or Start()
    logits = None
    if state is None and start.prime:
        logits, state = runner.forward(
            np.broadcast_to(vocab.encode_array(start.prime), (n, len(start.prime)))
        )
        logits = logits[:, -1:]
    if not text:
        return logits, state
    pieces = [text]
    if start.lines:  # a newline begins a piece, read from the zero state
        pieces = [p for p in re.split(f"(?={NEWLINE})", text) if p]
    out = []
    for piece in pieces:
        if start.lines and piece.startswith(NEWLINE):
            state = None
        piece_logits, state = runner.forward(
            np.broadcast_to(vocab.encode_array(piece), (n, len(piece))), state
        )
        out.append(piece_logits)
    return (out[0] if len(out) == 1 else np.concatenate(out, axis=1)), state


def _as_runner(model: Runner | CharModel) -> Runner:
    """A torch CharModel (as the training loop passes) wrapped as a runner; a runner as is."""
    return model if hasattr(model, "forward") and not hasattr(model, "state_dict") else TorchRunner(model)


def predict_steps(
    runner: Runner | CharModel, vocab: Vocab, prefix: str, top_k: int = 3, start: Start | None = None
) -> list[StepPrediction]:
    """Feed `prefix` from `start` and report the prediction after every character."""
    if not prefix:
        return []
    logits, _ = read(runner, vocab, prefix, start)  # (1, T, V)
    probs = softmax(logits[0])  # (T, V)
    k = max(1, min(top_k, len(vocab)))
    top_i = np.argsort(-probs, axis=-1, kind="stable")[:, :k]  # (T, k), ties: lower index first
    top_p = np.take_along_axis(probs, top_i, axis=-1)
    steps = []
    chars = vocab.chars
    for t, ch in enumerate(prefix):
        top = [(chars[i], p) for i, p in zip(top_i[t].tolist(), top_p[t].tolist())]
        target = prefix[t + 1] if t + 1 < len(prefix) else None
        steps.append(StepPrediction(ch, top[0][0], top[0][1], top, target))
    return steps


def choose(logits: np.ndarray, sample: SampleConfig, rng: np.random.Generator) -> np.ndarray:
    """logits (N, V) -> chosen indices (N,): greedy at temperature 0, else drawn from the
    distribution at that temperature, cut to the top k and the top-p mass."""
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
    u = rng.random(len(cdf)) * cdf[:, -1]  # uniform in [0, total)
    # the first index whose cdf passes u: a character of probability 0 never is one
    chosen = (cdf <= u[:, None]).sum(axis=-1)
    if chosen.max() >= V:  # u rounded up to the total: take the last possible character
        chosen = np.minimum(chosen, V - 1 - (p[:, ::-1] > 0).argmax(axis=-1))
    return chosen


def generate(
    runner: Runner | CharModel,
    vocab: Vocab,
    prefix: str,
    length: int,
    sample: SampleConfig | None = None,
    num_samples: int = 1,
    stop: str | None = None,
    start: Start | None = None,
) -> Iterator[list[str]]:
    """Yield, `length` times, the next character of each of `num_samples` continuations.

    The prefix is read once, from `start` (see `read`); afterwards each step feeds one
    character per sample, all samples in one batch, and carries the state, so every generated
    character costs the same. With an empty prefix the first character follows the start's
    prime, or is uniform without one. With a `stop` character (line mode), continuations that
    produced it keep yielding "".
    """
    runner = _as_runner(runner)
    sample = sample or SampleConfig()
    rng = np.random.default_rng(sample.seed)  # seed None: fresh entropy, not reproducible
    n = num_samples
    logits, state = read(runner, vocab, prefix, start, n)
    if logits is not None:
        last = logits[:, -1]  # (n, V)
    else:
        last = np.zeros((n, len(vocab)), dtype=np.float32)  # uniform first character
    done = np.zeros(n, dtype=bool)
    stop_idx = vocab.chars.index(stop) if stop and stop in vocab else -1
    if length < 1:
        return
    chars = vocab.chars
    nxt = choose(last, sample, rng)  # (n,)
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
        nxt = choose(logits[:, -1], sample, rng)


def resolve_engine(engine: str = "auto", device: str = "cpu") -> str:
    """ "numpy" or "torch" for an `Engine` choice on `device`.

    auto is numpy on the CPU and torch on a GPU. Measured on a 2-core CPU: numpy does
    everything predict and generate need with no start-up (no `import torch`, about 1.3 s) and
    runs one stream several times as fast as torch (whose per-call overhead outweighs the
    arithmetic of one character), and batches of samples at least as fast
    (benchmarks/generation_scaling.py). A GPU is torch's.
    """
    try:
        engine = Engine(engine).value
    except ValueError:
        raise ConfigError(f"unknown engine {engine!r}; choose auto, numpy or torch") from None
    on_cpu = str(device) == "cpu"
    if engine == "auto":
        return "numpy" if on_cpu else "torch"
    if engine == "numpy" and not on_cpu:
        raise ConfigError(f"the numpy engine runs on the CPU only; use --engine torch with --device {device}")
    return engine


def line_hash(line: str) -> int:
    """A stable signed 64-bit hash of a line (blake2b), as `charnext.data.line_hash` makes them."""
    digest = hashlib.blake2b(line.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def in_line_index(index: np.ndarray, line: str) -> bool:
    """Whether `line` is one of the lines a checkpoint's line index (sorted hashes) was made from."""
    h = line_hash(line)
    pos = int(np.searchsorted(index, np.int64(h)))
    return pos < len(index) and int(index[pos]) == h


class TorchRunner:
    """A torch CharModel as a runner: numpy in and out, its state a tensor on the model's device."""

    def __init__(self, model: CharModel):
        self.model = model

    def forward(self, idx: np.ndarray, state: Any = None) -> tuple[np.ndarray, Any]:
        """idx (B, T) -> logits (B, T, V) as float32 numpy, and the new state (a tensor)."""
        import torch

        device = self.model.head.weight.device
        x = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64)).to(device)
        with torch.no_grad(), small_work(self.model, x.numel()):
            logits, state = self.model(x, state)
        return logits.float().cpu().numpy(), state


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
    import torch

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
