"""Loss, bits per character and accuracy of a model on a text, carrying the state through.

Text is scored in windows (pieces of a stream, each read after what precedes it; or lines),
and each window's sums are kept apart, so that a result states its standard error: how much
its loss would move with other windows of the same text (`Sums.score`).
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass

import torch
import torch.nn.functional as F

from charnext.events import EvalResult, Score
from charnext.modeling.device import autocast
from charnext.modeling.model import CharModel, eval_mode
from charnext.text.data import pad_lines

# Logit entries (rows x positions x vocabulary) scored at once: a sample of a thousand windows of
# a large vocabulary is read in groups of rows, so that its logits stay under about 64 MB.
LOGITS_AT_ONCE = 2**24


@dataclass
class Sums:
    """What scoring some windows adds up to, in sums that processes can add together.

    The loss is the ratio `nll / chars`; its standard error is that of a ratio estimator over
    the windows (with windows of equal length: the standard deviation of their mean losses over
    the square root of their number), from the three sums of squares and products.
    """

    nll: float = 0.0  # negative log-likelihood of every scored character, nats
    correct: float = 0.0  # characters predicted exactly (argmax)
    chars: float = 0.0  # characters scored
    windows: float = 0.0  # windows scored (a window that scores nothing is not counted)
    nll_sq: float = 0.0  # sum over windows of (the window's nll)^2
    nll_chars: float = 0.0  # sum over windows of its nll x its characters
    chars_sq: float = 0.0  # sum over windows of (its characters)^2

    def add(self, nll: torch.Tensor, correct: torch.Tensor, chars: torch.Tensor) -> None:
        """Add windows: each one's nll, correct characters and characters scored, (W,) each."""
        nll, correct, chars = nll.double().cpu(), correct.double().cpu(), chars.double().cpu()
        self.nll += float(nll.sum())
        self.correct += float(correct.sum())
        self.chars += float(chars.sum())
        self.windows += float((chars > 0).sum())
        self.nll_sq += float((nll * nll).sum())
        self.nll_chars += float((nll * chars).sum())
        self.chars_sq += float((chars * chars).sum())

    def to_tensor(self) -> torch.Tensor:
        """The sums as one float64 tensor (for an all-reduce)."""
        return torch.tensor(astuple(self), dtype=torch.float64)

    @classmethod
    def from_tensor(cls, t: torch.Tensor) -> Sums:
        return cls(*(float(v) for v in t.tolist()))

    def score(self) -> Score:
        """Loss (nats/char), accuracy, characters, windows and the loss's standard error
        (None with fewer than two windows)."""
        if not self.chars:
            return Score(float("nan"), float("nan"), 0, 0, None)
        loss, k = self.nll / self.chars, self.windows
        se = None
        if k >= 2:
            # sum over windows of (nll_i - loss * chars_i)^2, from the sums of squares
            spread = self.nll_sq - 2 * loss * self.nll_chars + loss * loss * self.chars_sq
            mean_chars = self.chars / k
            se = math.sqrt(max(spread, 0.0) / (k * (k - 1))) / mean_chars
        return Score(loss, self.correct / self.chars, int(self.chars), int(k), se)


def _windows(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> tuple:
    """Per row of logits (B, T, V), targets (B, T), weights (B, T; 1 where scored): the nll,
    the correct characters and the characters scored, (B,) each."""
    nll = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # (B, T)
    right = (logits.argmax(-1) == targets).float()
    return (nll * weights).sum(1), (right * weights).sum(1), weights.sum(1)


@torch.no_grad()
def score_rows(
    model: CharModel,
    data: torch.Tensor,
    rows: list[tuple[int, int, int]],
    *,
    device: torch.device | None = None,
    precision: str = "fp32",
    seq_len: int = 256,
    prime: torch.Tensor | None = None,
) -> Sums:
    """Score windows of the encoded text `data`, each row `(lo, start, end)` a window: the
    model reads data[lo:end] from the zero state (after `prime`, encoded, where given) and the
    characters it predicts at positions start..end-1 (data[start+1:end+1]) are scored; those
    before `start` only warm its state up. Inputs are cut from `data` a window at a time, so a
    large memory-mapped text is never copied whole; rows are read in groups (LOGITS_AT_ONCE)."""
    device = device or model.head.weight.device
    sums = Sums()
    group = max(1, LOGITS_AT_ONCE // (seq_len * model.config.vocab_size))
    with eval_mode(model):
        for g in range(0, len(rows), group):
            _score_group(model, data, rows[g : g + group], sums, device, precision, seq_len, prime)
    return sums


def _score_group(model, data, rows, sums, device, precision, seq_len, prime) -> None:
    """score_rows for rows read side by side, in one batch."""
    state = None
    if prime is not None and len(prime):
        _, state = model(prime.long().to(device)[None].expand(len(rows), -1))
    span = max(end - lo for lo, _, end in rows)
    totals = torch.zeros(3, len(rows), dtype=torch.float64)  # nll, correct, chars per row
    for t0 in range(0, span, seq_len):
        t1 = min(t0 + seq_len, span)
        xs = torch.zeros(len(rows), t1 - t0, dtype=torch.long)
        ys = torch.zeros(len(rows), t1 - t0, dtype=torch.long)
        ms = torch.zeros(len(rows), t1 - t0)  # 1 where a position is scored
        for r, (lo, start, end) in enumerate(rows):
            a, b = lo + t0, min(lo + t1, end)  # this window of the row, as offsets in data
            if b > a:
                xs[r, : b - a] = data[a:b]
                ys[r, : b - a] = data[a + 1 : b + 1]
                ms[r, max(start - a, 0) : b - a] = 1.0
        xs, ys, ms = xs.to(device), ys.to(device), ms.to(device)
        with autocast(device, precision):
            logits, state = model(xs, state)
        totals += torch.stack([t.double().cpu() for t in _windows(logits, ys, ms)])
    sums.add(*totals)


def stream_rows(n: int, chunks: int = 32, seq_len: int = 256, warmup: int = 256) -> list[tuple]:
    """The rows that score every position of a text with `n` + 1 characters in `chunks` parallel
    pieces, each but the first warmed up on the `warmup` characters before it."""
    chunks = max(1, min(chunks, n // max(seq_len, 1)))
    size = math.ceil(n / chunks)
    starts = list(range(0, n, size))
    w = min(warmup, starts[1]) if len(starts) > 1 else 0
    # the first row has no warm-up and starts from the zero state like a plain pass
    return [(max(0, s - w), s, min(s + size, n)) for s in starts]


@torch.no_grad()
def evaluate_stream(
    model: CharModel,
    data: torch.Tensor,
    *,
    device: torch.device | None = None,
    precision: str = "fp32",
    chunks: int = 32,
    seq_len: int = 256,
    warmup: int = 256,
    part: tuple[int, int] = (0, 1),
    prime: torch.Tensor | None = None,
) -> EvalResult:
    """Score every character of `data` but the first, given all that comes before it.

    The text is cut into `chunks` parallel pieces read left to right with the state carried;
    each piece but the first is first warmed up on the `warmup` characters before it (not
    scored), so the result matches one sequential pass closely at a fraction of the time.
    `part=(i, k)` scores only pieces i, i+k, i+2k, ... (process i of k scores its share);
    `prime` (encoded), the model's, is read first, from zero.
    """
    n = len(data) - 1  # scored positions
    if n < 1:
        return EvalResult(float("nan"), float("nan"), 0)
    rows = stream_rows(n, chunks, seq_len, warmup)[part[0] :: part[1]]
    kw = dict(device=device, precision=precision, seq_len=seq_len, prime=prime)
    return score_rows(model, data, rows, **kw).score().result()


@torch.no_grad()
def score_lines(
    model: CharModel,
    lines: list[torch.Tensor],
    boundary: int,
    *,
    device: torch.device | None = None,
    precision: str = "fp32",
    batch_size: int = 512,
) -> Sums:
    """Score lines as line mode trains them: each from the zero state, its end included; each
    line is a window of the result's standard error."""
    device = device or model.head.weight.device
    sums = Sums()
    with eval_mode(model):
        order = sorted(range(len(lines)), key=lambda i: len(lines[i]))  # similar lengths together
        for b in range(0, len(order), batch_size):
            batch = pad_lines([lines[i] for i in order[b : b + batch_size]], boundary)
            x, y, wts = batch.x.to(device), batch.y.to(device), batch.weights.to(device)
            with autocast(device, precision):
                logits, _ = model(x)
            sums.add(*_windows(logits, y, wts))
    return sums
