"""Training data as tensors: the held-out split and batches of windows and of lines."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from charnext.text.reading import line_hash


def split_stream(data: torch.Tensor, val_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The first (1 - f) of the encoded text for training, the contiguous rest for validation."""
    n_val = int(len(data) * val_fraction)
    if val_fraction > 0 and n_val < 2:
        return data, data[:0]
    return data[: len(data) - n_val], data[len(data) - n_val :]


@dataclass
class Batch:
    """One training batch."""

    x: torch.Tensor  # (B, T) input indices
    y: torch.Tensor  # (B, T) target indices
    weights: torch.Tensor | None  # (B, T) 1 for real positions, 0 for padding; None = all real
    reset: bool  # True when the carried state must start from zero for this batch
    cold: torch.Tensor | None = None  # (B,) True for rows whose state starts from zero; None = none


class StreamBatches:
    """Truncated-BPTT windows over a stream: B parallel streams read left to right.

    Stream b reads the b-th contiguous B-th of the text, so the state a window ends with is
    the right state for the next window of the same stream (as char-rnn and torch-rnn do).
    Each epoch starts at a random offset below T so that windows do not always cut the text at
    the same places. With `cold_starts`, that share of the windows (drawn per step and row)
    starts from the zero state instead. With `random_windows`, windows are drawn at random
    positions instead and the state always starts from zero (as nanoGPT does).

    The whole batch schedule depends only on (data length, B, T, seed), so a run can resume at
    any step; `rank`/`world` select this process's rows of the global batch.
    """

    def __init__(
        self,
        data: torch.Tensor,
        batch_size: int,
        seq_len: int,
        seed: int,
        random_windows: bool = False,
        rank: int = 0,
        world: int = 1,
        cold_starts: float = 0.0,
    ):
        assert len(data) >= seq_len + 1 and batch_size >= 1
        self.data, self.B, self.T, self.seed = data, batch_size, seq_len, seed
        self.random_windows = random_windows
        self.cold_starts = cold_starts
        assert batch_size % world == 0
        per = batch_size // world
        self.rows = slice(rank * per, (rank + 1) * per)

    def windows_per_epoch(self) -> int:
        """Steps that make one pass over the text."""
        return max(1, (len(self.data) - 1) // (self.B * self.T))

    def _epoch_offset(self, epoch: int) -> int:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        max_offset = min(self.T, len(self.data) - 1 - self.B * self.T * self.windows_per_epoch())
        return int(torch.randint(0, max_offset + 1, (1,), generator=g)) if max_offset > 0 else 0

    def batch(self, step: int) -> Batch:
        """The batch for global step `step` (0-based)."""
        B, T = self.B, self.T
        if self.random_windows:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            starts = torch.randint(0, len(self.data) - T, (B,), generator=g)[self.rows]
            offsets = starts[:, None] + torch.arange(T + 1)  # (b, T+1)
            chunk = self.data[offsets]
            return Batch(chunk[:, :-1], chunk[:, 1:], None, reset=True)
        per_epoch = self.windows_per_epoch()
        epoch, window = divmod(step, per_epoch)
        offset = self._epoch_offset(epoch)
        stream_len = per_epoch * T
        streams = self.data[offset : offset + B * stream_len + 1]
        x = streams[: B * stream_len].view(B, stream_len)[self.rows, window * T : (window + 1) * T]
        y = streams[1 : B * stream_len + 1].view(B, stream_len)[self.rows, window * T : (window + 1) * T]
        return Batch(x, y, None, reset=window == 0, cold=self._cold_rows(step))

    def _cold_rows(self, step: int) -> torch.Tensor | None:
        """Which rows read this window from the zero state instead of the carried one: a seeded
        `cold_starts` share of them, so that the model also learns to begin reading cold, as
        `predict` does (benchmarks/cold_start.py measures the difference)."""
        if not self.cold_starts:
            return None
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step + 7_919)
        return (torch.rand(self.B, generator=g) < self.cold_starts)[self.rows]


class DocumentBatches(StreamBatches):
    """Truncated-BPTT windows over several documents (files), never one spanning two.

    Each document's training part is laid out as its own run of windows, the last one padded
    with weight-0 positions; the runs follow one another, and the B streams each read a
    contiguous B-th of all the windows, the state carried from one window to the next. A row
    whose window begins a document starts from the zero state (`Batch.cold`), so no state
    passes from one document into the next either. Instead of StreamBatches' random offset
    in characters, each epoch the streams begin at a seeded random window, so over the epochs
    every window is read. With `random_windows`, each row reads a random window from zero.
    `cold_starts` and `rank`/`world` are as in StreamBatches.
    """

    def __init__(
        self,
        data: torch.Tensor,
        spans: list[tuple[int, int]],
        batch_size: int,
        seq_len: int,
        seed: int,
        random_windows: bool = False,
        rank: int = 0,
        world: int = 1,
        cold_starts: float = 0.0,
    ):
        """`spans` are the documents' training parts as (start, length) in `data`."""
        T = seq_len
        spans = [(s, n) for s, n in spans if n >= 2]  # a text of one character predicts nothing
        self.starts = torch.tensor([s for s, _ in spans], dtype=torch.long)
        self.lengths = torch.tensor([n for _, n in spans], dtype=torch.long)
        counts = (self.lengths - 1 + T - 1) // T  # windows of each document, the last padded
        self.ends = torch.cumsum(counts, 0)  # the window after each document's last
        self.total = int(self.ends[-1]) if len(spans) else 0
        assert self.total >= batch_size >= 1 and batch_size % world == 0
        self.data, self.B, self.T, self.seed = data, batch_size, seq_len, seed
        self.random_windows, self.cold_starts = random_windows, cold_starts
        per = batch_size // world
        self.rows = slice(rank * per, (rank + 1) * per)

    def windows_per_epoch(self) -> int:
        """Steps that make one pass over the documents."""
        return max(1, self.total // self.B)

    def batch(self, step: int) -> Batch:
        """The batch for global step `step` (0-based)."""
        if self.random_windows:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            w = torch.randint(0, self.total, (self.B,), generator=g)
            x, y, weights, _ = self._windows(w[self.rows])
            return Batch(x, y, weights, reset=True)
        per = self.windows_per_epoch()
        epoch, window = divmod(step, per)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        first = int(torch.randint(0, self.total, (1,), generator=g))  # where stream 0 begins
        w = (first + torch.arange(self.B) * per + window) % self.total
        x, y, weights, begins = self._windows(w[self.rows])
        cold = self._cold_rows(step)
        cold = begins if cold is None else cold | begins
        return Batch(x, y, weights, reset=window == 0, cold=cold)

    def _windows(self, w: torch.Tensor):
        """Windows `w` (b,) of the layout: inputs and targets (b, T), their weights (0 on the
        padding after a document's end), and whether each window begins its document."""
        doc = torch.searchsorted(self.ends, w, right=True)  # (b,) the document of each window
        k = w - (self.ends[doc] - (self.lengths[doc] - 1 + self.T - 1) // self.T)  # its window there
        start = self.starts[doc] + k * self.T
        real = torch.clamp(self.lengths[doc] - 1 - k * self.T, max=self.T)  # (b,) positions scored
        pos = torch.arange(self.T)
        keep = pos[None, :] < real[:, None]  # (b, T)
        at = torch.where(keep, start[:, None] + pos, start[:, None])  # padding reads a real index
        x = torch.where(keep, self.data[at], 0)
        y = torch.where(keep, self.data[at + 1], 0)
        return x, y, keep.float(), k == 0


class LineBatches:
    """Batches of whole lines, each `newline + line` -> `line + newline`, padded.

    Every line starts from the zero state and the padding carries weight 0, so nothing leaks
    from one line to the next and padding never counts in the loss.

    Each epoch reads every line once (but the last `len(lines) % B` of its shuffle, which sit
    it out), in batches of lines of about the same length: the epoch's shuffle is cut into
    chunks of `BUCKET_BATCHES` batches, each chunk sorted by length and cut into batches, and
    the batches shuffled. A batch is padded to its longest line, so a batch of random lines
    pays for the longest of them: on names (32,000 lines of 2-15 characters, mean 7.1 with the
    newline) a random batch of 256 is padded to 12.5 positions, and its step costs that much.
    Sorted chunks cut the padding to almost none (docs/planning.md, "Line batches by length").

    The batch of a step depends only on (lines, B, seed, step), so a run can resume at any
    step; `rank`/`world` select this process's rows of the global batch.
    """

    BUCKET_BATCHES = 16  # batches per sorted chunk: lengths alike within a batch, batches shuffled

    def __init__(
        self,
        lines: list[torch.Tensor],
        boundary: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
    ):
        assert lines and batch_size % world == 0
        self.lines, self.boundary, self.B, self.seed = lines, boundary, batch_size, seed
        self.lengths = torch.tensor([len(line) for line in lines], dtype=torch.long)
        per = batch_size // world
        self.rows = slice(rank * per, (rank + 1) * per)
        self._epoch: tuple[int, torch.Tensor] | None = None  # (epoch, its batches' line indices)

    def windows_per_epoch(self) -> int:
        """Steps that see about every line once."""
        return max(1, len(self.lines) // self.B)

    def batch(self, step: int) -> Batch:
        """The batch for global step `step`."""
        epoch, k = divmod(step, self.windows_per_epoch())
        picks = self.epoch_batches(epoch)[k][self.rows].tolist()
        return pad_lines([self.lines[i] for i in picks], self.boundary)

    def epoch_batches(self, epoch: int) -> torch.Tensor:
        """The line indices of every batch of `epoch`, (steps per epoch, B)."""
        if self._epoch is None or self._epoch[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            n, steps = len(self.lines), self.windows_per_epoch()
            order = torch.cat([torch.randperm(n, generator=g) for _ in range(-(-steps * self.B // n))])
            chunks = order[: steps * self.B].split(self.BUCKET_BATCHES * self.B)
            # a stable sort of each chunk by length, then its batches, shuffled
            rows = torch.cat([c[torch.sort(self.lengths[c], stable=True).indices] for c in chunks])
            batches = rows.view(steps, self.B)
            self._epoch = (epoch, batches[torch.randperm(steps, generator=g)])
        return self._epoch[1]


def pad_lines(lines: list[torch.Tensor], boundary: int) -> Batch:
    """Lines -> a padded batch with `boundary` before and after each line."""
    T = max(len(line) for line in lines) + 1
    x = torch.full((len(lines), T), boundary, dtype=torch.long)
    y = torch.full((len(lines), T), boundary, dtype=torch.long)
    w = torch.zeros(len(lines), T)
    for i, line in enumerate(lines):
        n = len(line)
        x[i, 1 : n + 1] = line
        y[i, :n] = line
        w[i, : n + 1] = 1.0
    return Batch(x, y, w, reset=True)


def line_index(lines: list[str]) -> torch.Tensor:
    """Sorted unique hashes of `lines`: 8 bytes a line, enough to tell whether a generated line
    occurs in the training text without storing the text in the checkpoint."""
    return torch.tensor(sorted({line_hash(line) for line in lines}), dtype=torch.int64)
