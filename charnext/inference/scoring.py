"""Loss, bits per character and accuracy of a model on a text, carrying the state through."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from charnext.events import EvalResult
from charnext.modeling.device import autocast
from charnext.modeling.model import CharModel, eval_mode
from charnext.text.data import pad_lines


class _Tally:
    """The loss, accuracy and count over scored positions, added a batch at a time."""

    def __init__(self) -> None:
        self.total, self.correct, self.count = 0.0, 0.0, 0.0

    def add(self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> None:
        """logits (B, T, V), targets (B, T), weights (B, T): 1 where a position is scored."""
        nll = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # (B, T)
        self.total += float((nll * weights).sum())
        self.correct += float(((logits.argmax(-1) == targets).float() * weights).sum())
        self.count += float(weights.sum())

    def result(self) -> EvalResult:
        if not self.count:
            return EvalResult(float("nan"), float("nan"), 0)
        return EvalResult(self.total / self.count, self.correct / self.count, int(self.count))


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
    `prime` (encoded), the model's, is read first, from zero. Inputs are cut from `data` one
    window at a time, so a large memory-mapped text is never copied whole.
    """
    device = device or model.head.weight.device
    with eval_mode(model):
        n = len(data) - 1  # scored positions
        if n < 1:
            return EvalResult(float("nan"), float("nan"), 0)
        chunks = max(1, min(chunks, n // max(seq_len, 1)))
        size = math.ceil(n / chunks)
        starts = list(range(0, n, size))
        chunks = len(starts)
        w = min(warmup, starts[1]) if chunks > 1 else 0
        # row c holds inputs data[lo:end] with lo = s - w (warm-up, not scored) and targets shifted
        # by one; the first row has no warm-up and starts from the zero state like a plain pass.
        span = w + size
        rows = [(max(0, s - w), min(s + size, n), s) for s in starts][part[0] :: part[1]]
        tally = _Tally()
        state = None
        if prime is not None and len(prime) and rows:
            _, state = model(prime.long().to(device)[None].expand(len(rows), -1))
        for t0 in range(0, span if rows else 0, seq_len):
            t1 = min(t0 + seq_len, span)
            xs = torch.zeros(len(rows), t1 - t0, dtype=torch.long)
            ys = torch.zeros(len(rows), t1 - t0, dtype=torch.long)
            ms = torch.zeros(len(rows), t1 - t0)  # 1 where a position is scored
            for r, (lo, end, s) in enumerate(rows):
                a, b = lo + t0, min(lo + t1, end)  # this window of the row, as offsets in data
                if b > a:
                    xs[r, : b - a] = data[a:b]
                    ys[r, : b - a] = data[a + 1 : b + 1]
                    ms[r, max(s - a, 0) : b - a] = 1.0
            xs, ys, ms = xs.to(device), ys.to(device), ms.to(device)
            with autocast(device, precision):
                logits, state = model(xs, state)
            tally.add(logits, ys, ms)
    return tally.result()


@torch.no_grad()
def evaluate_lines(
    model: CharModel,
    lines: list[torch.Tensor],
    boundary: int,
    *,
    device: torch.device | None = None,
    precision: str = "fp32",
    batch_size: int = 512,
) -> EvalResult:
    """Score lines as line mode trains them: each from the zero state, its end included."""
    device = device or model.head.weight.device
    with eval_mode(model):
        tally = _Tally()
        order = sorted(range(len(lines)), key=lambda i: len(lines[i]))  # similar lengths together
        for b in range(0, len(order), batch_size):
            batch = pad_lines([lines[i] for i in order[b : b + batch_size]], boundary)
            x, y, wts = batch.x.to(device), batch.y.to(device), batch.weights.to(device)
            with autocast(device, precision):
                logits, _ = model(x)
            tally.add(logits, y, wts)
    return tally.result()
