"""What a run trains on: one interface, two shapes of data (a character stream, or lines).

Both corpora split the text into training and validation parts, hand out the batch of any
step, score the validation part, and give the lecture's fixed window and the preview prompt.
The loop uses them the same way and never asks which one it has.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

from charnext.config import TrainConfig
from charnext.errors import ConfigError, TextError
from charnext.inference.scoring import Sums, score_lines, score_rows
from charnext.inference.steps import Start
from charnext.modeling.model import CharModel
from charnext.text.data import (
    Batch,
    DocumentBatches,
    LineBatches,
    StreamBatches,
    line_index,
    split_stream,
)
from charnext.text.reading import text_lines
from charnext.text.vocab import Vocab, count_indices
from charnext.training.validation import Sample, line_picks, line_sample, sample_rows, stream_sample

NEWLINE = "\n"
# Default batches, measured on tinyshakespeare (README, "Training on real text"): in a short
# budget more, smaller steps learn faster than fewer large ones (16x64 windows reached 1.485
# nats/char in 90 s where 64x128 reached 1.727). Lines are short, so a line batch holds more.
DEFAULT_BATCH = 16
DEFAULT_LINE_BATCH = 64
WINDOW_CHARS = 24  # characters of the lecture's fixed window
# Texts shorter than these hold nothing out by default: their validation part would be too
# small to say anything, and every character is needed for training.
MIN_VAL_CHARS_TEXT = 10_000
MIN_VAL_LINES = 100
DEFAULT_VAL_FRACTION = 0.1
LINE_INDEX_MAX_LINES = 2_000_000  # above this, no index of training lines is kept (8 bytes a line)


def held_out_share(config: TrainConfig, size: int, lines: bool = False) -> float:
    """The share of a text of `size` characters (lines, in line mode) held out for validation:
    --val-fraction if given, else DEFAULT_VAL_FRACTION of a text long enough to spare it."""
    if config.val_fraction is not None:
        return config.val_fraction
    return DEFAULT_VAL_FRACTION if size >= (MIN_VAL_LINES if lines else MIN_VAL_CHARS_TEXT) else 0.0


PRIME_SCAN = 10_000_000  # characters of a text searched for a paragraph break


def stream_prime(data: torch.Tensor, vocab: Vocab) -> str:
    """What a stream model reads before a prompt: the text's own boundary, so that a prompt
    reads as the beginning of a passage. A blank line where the text has them (a paragraph, a
    speech, begins after one), else a newline where it has newlines, else nothing.

    Read from the zero state, a prompt starts where training hardly ever is: there the state
    is carried along the text. On tinyshakespeare (benchmarks/cold_start.py; 2,000 steps of a
    2x256 LSTM at batch 16x64) the first 16 characters of each held-out speech cost 0.698
    nats/char more from the zero state than with the state carried; 0.470 more after a newline;
    and 0.011 less after a blank line, which says "a new speech" as the text itself does.
    Training a tenth of the windows from the zero state instead (--cold-starts 0.1) left a gap
    of 0.241 from the zero state and cost 0.065 nats/char with the state carried.
    """
    if NEWLINE not in vocab:
        return ""
    nl = vocab.chars.index(NEWLINE)
    head = data[:PRIME_SCAN]
    is_nl = head == nl
    return NEWLINE * 2 if bool((is_nl[:-1] & is_nl[1:]).any()) else NEWLINE


class Corpus(Protocol):
    """What the training loop asks of a text, in whichever shape it comes (a stream, lines)."""

    vocab: Vocab  # the characters
    start: Start  # where prediction starts: the prime a stream model reads, or a line's start
    carries_state: bool  # whether the recurrent state runs on from one batch to the next
    line_index: torch.Tensor | None  # hashes of the training lines (line mode), or None
    seq_len: int  # characters per window (the longest line, in line mode)
    batch_size: int  # windows (lines) per step, all processes
    vocab_counts: list[int]  # how often each character occurs in the training part
    train_chars: int  # characters trained on
    chars_per_step: float  # characters a step trains on, all processes (lines: on average)
    val_chars: int  # characters held out
    window: tuple[torch.Tensor, torch.Tensor]  # the lecture's fixed window: (inputs, targets)

    def batch(self, step: int) -> Batch: ...
    def steps_per_epoch(self) -> int: ...
    @property
    def rows(self) -> slice: ...
    def has_validation(self) -> bool: ...
    def sample(self, read: float) -> Sample: ...
    def evaluate(
        self, model: CharModel, device, precision: str, sample: Sample | None, part: tuple[int, int]
    ) -> Sums: ...
    def sample_prompt(self) -> str: ...


class _Batched:
    """What both corpora do through their batches (StreamBatches or LineBatches)."""

    batches: StreamBatches | LineBatches

    def batch(self, step: int) -> Batch:
        """The batch of global step `step` (0-based), this process's rows."""
        return self.batches.batch(step)

    def steps_per_epoch(self) -> int:
        """Steps that make one pass over the training part (about every line once)."""
        return self.batches.windows_per_epoch()

    @property
    def rows(self) -> slice:
        """This process's rows of the global batch (and of the carried state)."""
        return self.batches.rows

    @property
    def chars_per_step(self) -> float:
        """Characters a step trains on, all processes: its windows' positions."""
        return self.batch_size * self.seq_len


class _HeldOutStreams:
    """How both stream corpora score their held-out part: spans of one encoded tensor."""

    vocab: Vocab
    start: Start
    held_out: torch.Tensor  # the encoded tensor the held-out spans are in
    spans: list[tuple[int, int]]  # each held-out part: (offset in `held_out`, characters)

    def sample(self, read: float) -> Sample:
        """The fixed sample a check reading about `read` characters scores (validation.py)."""
        return stream_sample(self.spans, read)

    def evaluate(
        self, model: CharModel, device, precision: str, sample: Sample | None, part: tuple[int, int]
    ) -> Sums:
        """This process's share of the sums scoring `sample` of the held-out part (None: all)."""
        sample = sample or self.sample(math.inf)
        rows = sample_rows(self.spans, sample)[part[0] :: part[1]]
        prime = self.vocab.encode(self.start.prime) if self.start.prime else None
        return score_rows(model, self.held_out, rows, device=device, precision=precision, prime=prime)


class StreamCorpus(_Batched, _HeldOutStreams):
    """A text read as one stream of characters, cut into truncated-BPTT windows.

    The last `val_fraction` of the text is held out, contiguous. Without --random-windows the
    recurrent state is carried from one window to the next of the same stream.
    """

    line_index: torch.Tensor | None = None

    def __init__(
        self,
        data: torch.Tensor,
        vocab: Vocab,
        config: TrainConfig,
        rank: int = 0,
        world: int = 1,
        counts: list[int] | None = None,
    ):
        """`data` is the text encoded with `vocab` (possibly memory-mapped); `counts` may spare
        a pass over it to count each character."""
        self.vocab = vocab
        self.vocab_counts = counts or count_indices(data, len(vocab))
        self.train_data, self.val_data = split_stream(data, held_out_share(config, len(data)))
        n = len(self.train_data)
        if n < 2:
            raise TextError("the training part of the text is shorter than 2 characters")
        # Short texts: shrink the window, then the batch, so that one step fits in the text.
        self.seq_len = min(config.seq_len, n - 1)
        batch = max(1, min(config.batch_size or DEFAULT_BATCH, (n - 1) // self.seq_len))
        if world > 1:
            batch = max(world, batch // world * world)
            if self.seq_len * batch > n - 1:
                raise TextError(f"the text is too short to give each of {world} processes a window")
        self.batch_size = batch
        self.batches = StreamBatches(
            self.train_data, batch, self.seq_len, config.seed, config.random_windows, rank, world,
            config.cold_starts,
        )  # fmt: skip
        self.carries_state = not config.random_windows
        self.start = Start(stream_prime(data, vocab))  # where prediction starts (recorded)
        self.train_chars, self.val_chars = n, len(self.val_data)
        self.held_out, self.spans = self.val_data, [(0, len(self.val_data))]
        w = min(n - 1, WINDOW_CHARS)
        self.window = (self.train_data[:w], self.train_data[1 : w + 1])  # (inputs, targets)

    def has_validation(self) -> bool:
        """Whether anything is held out to validate on."""
        return len(self.val_data) > 1

    def sample_prompt(self) -> str:
        """The preview's default prompt: the text's first line, cut short."""
        head = self.vocab.decode(self.train_data[:32])
        return head.split(NEWLINE)[0][:24] or head[:1]


class DocumentCorpus(_Batched, _HeldOutStreams):
    """Several texts (files) read as streams of characters, no window spanning two of them.

    Each text's last `val_fraction` is held out, so validation draws from every file; its loss
    combines theirs, weighted by characters. The training parts are laid out by
    DocumentBatches: each text in its own windows (the last one padded with weight 0), a
    window that begins a text read from the zero state.
    """

    line_index: torch.Tensor | None = None

    def __init__(
        self,
        data: torch.Tensor,
        lengths: list[int],
        vocab: Vocab,
        config: TrainConfig,
        rank: int = 0,
        world: int = 1,
        counts: list[int] | None = None,
    ):
        """`data` is the texts encoded with `vocab`, end to end (possibly memory-mapped);
        `lengths` each text's length in characters."""
        assert sum(lengths) == len(data)
        self.vocab = vocab
        self.vocab_counts = counts or count_indices(data, len(vocab))
        share = held_out_share(config, len(data))
        spans, self.val_parts, at = [], [], 0  # training parts (start, length); held-out parts
        self.held_out, self.spans = data, []  # the held-out parts, as (start, length) in `data`
        for n in lengths:
            train, val = split_stream(data[at : at + n], share)
            spans.append((at, len(train)))
            if len(val) > 1:
                self.val_parts.append(val)
                self.spans.append((at + len(train), len(val)))
            at += n
        longest = max(n for _, n in spans)
        if longest < 2:
            raise TextError("the training part of every file is shorter than 2 characters")
        self.seq_len = min(config.seq_len, longest - 1)
        windows = sum(math.ceil((n - 1) / self.seq_len) for _, n in spans if n >= 2)
        batch = max(1, min(config.batch_size or DEFAULT_BATCH, windows))
        if world > 1:
            batch = max(world, batch // world * world)
            if batch > windows:
                raise TextError(f"the texts are too short to give each of {world} processes a window")
        self.batch_size = batch
        self.batches = DocumentBatches(
            data, spans, batch, self.seq_len, config.seed, config.random_windows, rank, world,
            config.cold_starts,
        )  # fmt: skip
        self.carries_state = not config.random_windows
        self.start = Start(stream_prime(data, vocab))  # where prediction starts (recorded)
        self.train_chars = sum(n for _, n in spans)
        self.val_chars = sum(len(v) for v in self.val_parts)
        self._first, first_len = next((s, n) for s, n in spans if n >= 2)  # the first text trained on
        w = min(first_len - 1, WINDOW_CHARS)
        self.window = (data[self._first : self._first + w], data[self._first + 1 : self._first + w + 1])
        self.data = data

    def has_validation(self) -> bool:
        """Whether anything is held out to validate on."""
        return bool(self.val_parts)

    def sample_prompt(self) -> str:
        """The preview's default prompt: the first text's first line, cut short."""
        head = self.vocab.decode(self.data[self._first : self._first + 32])
        return head.split(NEWLINE)[0][:24] or head[:1]


class LineCorpus(_Batched):
    """A text read as independent lines: each `newline + line` predicts `line + newline`.

    A seeded random tenth of the lines is held out. Every line starts from the zero state.
    """

    carries_state = False

    def __init__(self, text: str, vocab: Vocab, config: TrainConfig, rank: int = 0, world: int = 1):
        lines = text_lines(text)
        if not lines:
            raise TextError("line mode needs at least one non-empty line")
        n_val = int(len(lines) * held_out_share(config, len(lines), lines=True))
        # Lines are independent samples, and line files are often sorted (by frequency,
        # alphabetically), so the held-out lines are a seeded random 10%, as makemore's
        # test set is, not the last ones, which would all be the rarest or the z's.
        order = torch.randperm(len(lines), generator=torch.Generator().manual_seed(config.seed))
        held_out = set(order[:n_val].tolist())
        train_text = [line for i, line in enumerate(lines) if i not in held_out]
        val_text = [line for i, line in enumerate(lines) if i in held_out]
        self.vocab = vocab
        self.train_lines = [vocab.encode(line) for line in train_text]
        self.val_lines = [vocab.encode(line) for line in val_text]
        # lets `predict` say whether a generated line is new or one of the training lines
        self.line_index = line_index(train_text) if len(lines) <= LINE_INDEX_MAX_LINES else None
        self.boundary = vocab.chars.index(NEWLINE)
        self.start = Start(NEWLINE, lines=True)  # every line is read after a newline, from zero
        wanted = config.batch_size or DEFAULT_LINE_BATCH
        self.batch_size = max(world, wanted // world * world)
        self.batches = LineBatches(self.train_lines, self.boundary, self.batch_size, config.seed, rank, world)
        encoded = self.train_lines + self.val_lines
        counts = torch.bincount(torch.cat(encoded).long(), minlength=len(vocab))
        counts[self.boundary] += len(encoded)
        self.vocab_counts = counts.tolist()
        self.train_chars = sum(len(x) + 1 for x in self.train_lines)
        self.val_chars = sum(len(x) + 1 for x in self.val_lines)
        self.seq_len = max(len(x) for x in self.train_lines) + 1
        # the lecture's view: the first training line, read after a newline from the zero state
        nl = torch.tensor([self.boundary], dtype=self.train_lines[0].dtype)
        seq = torch.cat([nl, self.train_lines[0], nl])[: WINDOW_CHARS + 1]
        self.window = (seq[:-1], seq[1:])  # (inputs, targets)

    @property
    def chars_per_step(self) -> float:
        """Characters a step trains on, all processes, on average: its lines and their newlines,
        not the padding (a batch is padded to its longest line), as the plan counts them."""
        return self.batch_size * self.train_chars / len(self.train_lines)

    def has_validation(self) -> bool:
        """Whether any line is held out to validate on."""
        return len(self.val_lines) > 1

    def sample(self, read: float) -> Sample:
        """The fixed sample a check reading about `read` characters scores (validation.py)."""
        return line_sample([len(x) + 1 for x in self.val_lines], read)

    def evaluate(
        self, model: CharModel, device, precision: str, sample: Sample | None, part: tuple[int, int]
    ) -> Sums:
        """This process's share of the sums scoring `sample` of the held-out lines (None: all)."""
        picks = line_picks(len(self.val_lines), sample or self.sample(math.inf))[part[0] :: part[1]]
        lines = [self.val_lines[i] for i in picks]
        return score_lines(model, lines, self.boundary, device=device, precision=precision)

    def sample_prompt(self) -> str:
        """The preview's default prompt: none, a line is generated from its start."""
        return ""


def make_corpus(
    text: str | torch.Tensor | list[str],
    vocab: Vocab,
    config: TrainConfig,
    rank: int = 0,
    world: int = 1,
    counts: list[int] | None = None,
    lengths: list[int] | None = None,
) -> Corpus:
    """The corpus `config` asks for: lines (--lines) or a stream, of a text or encoded tokens;
    several texts (a list, or tokens with each one's `lengths`) as documents kept apart."""
    if config.lines:
        if isinstance(text, torch.Tensor):
            raise ConfigError("line mode trains on a text (--file), not on prepared data (--data)")
        # the lines of every text: joined by a newline, each text's last line stays whole
        return LineCorpus(text if isinstance(text, str) else NEWLINE.join(text), vocab, config, rank, world)
    if isinstance(text, list):
        lengths, text = [len(t) for t in text], "".join(text)
    data = text if isinstance(text, torch.Tensor) else vocab.encode(text)
    if lengths is not None:
        return DocumentCorpus(data, lengths, vocab, config, rank, world, counts)
    return StreamCorpus(data, vocab, config, rank, world, counts)
