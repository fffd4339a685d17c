"""Loss, bits per character and accuracy of a model on a text, carrying the state through."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from charnext.events import EvalResult
from charnext.modeling.device import autocast
from charnext.modeling.model import CharModel, eval_mode
from charnext.text.data import pad_lines


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
    row_chars: int | None = None,
) -> EvalResult:
    """Score every character of `data` but the first, given all that comes before it.

    The text is cut into `chunks` parallel pieces read left to right with the state carried;
    each piece but the first is first warmed up on the `warmup` characters before it (not
    scored), so the result matches one sequential pass closely at a fraction of the time.
    `part=(i, k)` scores only pieces i, i+k, i+2k, ... (process i of k scores its share);
    `prime` (encoded), the model's, is read first, from zero. Inputs are cut from `data` one
    window at a time, so a large memory-mapped text is never copied whole. With `row_chars`
    only the first `row_chars` characters of each piece are scored: a sample spread over the text.
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
        size = min(size, row_chars or size)  # a sample: the first row_chars of each piece
        span = w + size
        rows = [(max(0, s - w), min(s + size, n), s) for s in starts][part[0] :: part[1]]
        correct = 0.0
        row_totals, row_counts = torch.zeros(len(rows), dtype=torch.float64), torch.zeros(len(rows))
        state = None
        if prime is not None and len(prime) and rows:
            _, state = model(prime.long().to(device)[None].expand(len(rows), -1))
        for t0 in range(0, span if rows else 0, seq_len):
            t1 = min(t0 + seq_len, span)
            xs, ys, ms = (t.to(device) for t in _window(data, rows, t0, t1))
            with autocast(device, precision):
                logits, state = model(xs, state)
            nll = F.cross_entropy(logits.float().transpose(1, 2), ys, reduction="none")  # (C, t)
            row_totals += (nll * ms).sum(1).double().cpu()  # per row, for the standard error
            row_counts += ms.sum(1).cpu()
            correct += float(((logits.argmax(-1) == ys).float() * ms).sum())
    return _result(row_totals, row_counts, correct)


def _window(data: torch.Tensor, rows: list[tuple[int, int, int]], t0: int, t1: int):
    """Inputs, targets and the mask of scored positions (1) at offsets t0..t1 of every row
    (lo, end, s): inputs data[lo:end], scored from s on."""
    xs = torch.zeros(len(rows), t1 - t0, dtype=torch.long)
    ys = torch.zeros(len(rows), t1 - t0, dtype=torch.long)
    ms = torch.zeros(len(rows), t1 - t0)  # 1 where a position is scored
    for r, (lo, end, s) in enumerate(rows):
        a, b = lo + t0, min(lo + t1, end)  # this window of the row, as offsets in data
        if b > a:
            xs[r, : b - a] = data[a:b]
            ys[r, : b - a] = data[a + 1 : b + 1]
            ms[r, max(s - a, 0) : b - a] = 1.0
    return xs, ys, ms


def _result(totals: torch.Tensor, counts: torch.Tensor, correct: float) -> EvalResult:
    """The mean loss and accuracy from pieces' summed losses and counts, with its standard error."""
    total, count = float(totals.sum()), float(counts.double().sum())
    if not count:
        return EvalResult(float("nan"), float("nan"), 0)
    return EvalResult(total / count, correct / count, int(count), stderr=standard_error(totals, counts))


def standard_error(totals: torch.Tensor, counts: torch.Tensor) -> float | None:
    """The standard error of a mean loss sum(totals) / sum(counts) made of independent pieces
    (the rows of a stream, the lines of a line corpus), as a ratio estimator; None with fewer
    than two pieces."""
    keep = counts > 0
    totals, counts = totals[keep].double(), counts[keep].double()
    n = len(counts)
    if n < 2:
        return None
    mean = float(totals.sum() / counts.sum())
    residual = totals - mean * counts
    return float((residual.square().sum() / (n * (n - 1))).sqrt() / counts.mean())


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
        correct = 0.0
        totals, counts = [], []
        order = sorted(range(len(lines)), key=lambda i: len(lines[i]))  # similar lengths together
        for b in range(0, len(order), batch_size):
            batch = pad_lines([lines[i] for i in order[b : b + batch_size]], boundary)
            x, y, wts = batch.x.to(device), batch.y.to(device), batch.weights.to(device)
            with autocast(device, precision):
                logits, _ = model(x)
            nll = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none")
            totals.append((nll * wts).sum(1).double().cpu())
            counts.append(wts.sum(1).double().cpu())
            correct += float(((logits.argmax(-1) == y).float() * wts).sum())
    if not totals:
        return EvalResult(float("nan"), float("nan"), 0)
    return _result(torch.cat(totals), torch.cat(counts), correct)
