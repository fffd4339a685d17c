"""What a run's checks score: a fixed sample of its held-out part, and the final figure.

Every periodic check scores the same characters, so that any two checks compare like with like
(live and averaged weights, best and latest, before and after a resume): a `Sample`, chosen
once per run and recorded in the run's state. It is spread evenly over the whole held-out part:

- a stream: `windows` windows of WINDOW characters, each at the start of one of as many equal
  pieces and read after the WARMUP characters before it (the piece at the part's start reads
  the model's prime only, as a plain pass does); several documents share the windows in
  proportion to their held-out characters;
- lines: every n-th held-out line, each read from its start as line mode trains it.

Its size is what the run can afford: scoring EVALS_PER_RUN samples costs about CHECKS_SHARE of
the training the run is planned to do (a character scored costs about FORWARD_COST of one
trained), between MIN_READ and MAX_READ characters read. A held-out part small enough is
scored whole, as `charnext evaluate` scores a text (32 pieces, each after the 256 characters
before it). The final figure scores a larger set in the same way, up to FINAL_SHARE of the run.
Each score states its standard error over the windows (inference/scoring.py, `Sums.score`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# Characters read before a window and not scored. With a 2x256 LSTM trained 60 s on
# tinyshakespeare, windows of 128 characters after 0, 32, 64 and 128 such characters scored
# 0.08, 0.0009, 0.0002 and 0.0000 nats/char above the same characters read with the state
# carried through the whole part.
WARMUP = 64
WINDOW = 128  # characters a window scores
# Many short windows rather than a few long ones: passages differ in difficulty, so the spread
# of window means hardly narrows with their length (about 0.2-0.25 nats/char at 128 to 512
# characters in the same run), and the standard error falls with the square root of their number.
WHOLE_WARMUP = 256  # a part scored whole: as evaluate_stream, 32 pieces after 256 characters each
MIN_PIECE = 16  # ... or, in a part under 8,192 characters, more pieces of at least this many
FORWARD_COST = 0.25  # scoring a character costs about this share of training on one (forward
# only, many windows side by side: 111,539 characters scored in 0.53 s against 37,750 chars/s
# trained, bf16 on a 2-core Xeon; about 0.24 in fp32)
# The periodic checks' scoring: at most about this share of the run, all together (the sample's
# windows are a power of two, so from half of it). A 60 s run on tinyshakespeare here: 128
# windows, 16,384 characters, 0.1 s a check; the preview and the save take about as long again.
CHECKS_SHARE = 0.03
FINAL_SHARE = 0.02  # the final figure's scoring: about this share of the run
# at least 32 windows, so that the standard error means something; at most about 1,000
MIN_READ = 32 * (WARMUP + WINDOW)
MAX_READ = 1024 * (WARMUP + WINDOW)
MAX_FINAL_READ = 2_000_000  # the final figure reads at most this many characters


@dataclass(frozen=True)
class Sample:
    """The held-out characters a check scores; recorded in the run's state as `val_sample`."""

    windows: int  # windows (lines, in line mode), spread evenly over the held-out part
    length: int  # characters each window scores (0: its whole piece; lines: their own)
    warmup: int  # characters read before each window and not scored (a stream)
    chars: int  # characters scored in all
    whole: bool = False  # whether the windows are all of the held-out part

    def to_dict(self) -> dict:
        """Plain values, for the run's record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, saved) -> Sample | None:
        """The sample a run recorded (None: none, or not one this version reads)."""
        try:
            values = {k: int(saved[k]) for k in ("windows", "length", "warmup", "chars")}
            return cls(**values, whole=bool(saved["whole"]))
        except (TypeError, KeyError, ValueError):
            return None


def sample_read(run_chars: float, checks: int) -> float:
    """Characters a periodic check may read (windows and their warm-up), for a run expected to
    train on `run_chars` characters and check `checks` times."""
    share = CHECKS_SHARE * run_chars / FORWARD_COST / max(checks, 1)
    return min(MAX_READ, max(MIN_READ, share))


def final_read(run_chars: float) -> float:
    """Characters the final figure may read, for a run that trained on `run_chars` characters."""
    return min(MAX_FINAL_READ, max(MIN_READ, FINAL_SHARE * run_chars / FORWARD_COST))


# -- a stream (or several documents) ---------------------------------------------------------


def stream_sample(spans: list[tuple[int, int]], read: float) -> Sample:
    """The sample of the held-out streams `spans` ((offset, characters) each) that reading
    about `read` characters affords: all of them where it can, else evenly spread windows."""
    rows = sample_rows(spans, Sample(0, 0, WHOLE_WARMUP, 0, whole=True))
    total = sum(e - s for _, s, e in rows)
    if read >= sum(e - lo for lo, _, e in rows):
        return Sample(len(rows), 0, WHOLE_WARMUP, total, whole=True)
    k = _power_of_two(min(read // (WARMUP + WINDOW), total // WINDOW))
    windows = Sample(k, WINDOW, WARMUP, 0)
    return Sample(k, WINDOW, WARMUP, sum(e - s for _, s, e in sample_rows(spans, windows)))


def sample_rows(spans: list[tuple[int, int]], sample: Sample) -> list[tuple[int, int, int]]:
    """The rows of scoring.score_rows that score `sample` of the held-out streams `spans`
    ((offset, characters) in the same tensor): (first character read, first scored, end)."""
    scored = [(offset, chars - 1) for offset, chars in spans if chars >= 2]  # positions scored
    rows = []
    if sample.whole:
        for offset, n in scored:
            rows += [(offset + lo, offset + s, offset + e) for lo, s, e in whole_rows(n, sample.warmup)]
        return rows
    for (offset, n), k in zip(scored, _shares(sample.windows, [n for _, n in scored])):
        starts = [offset + i * n // k for i in range(k)] + [offset + n]
        for s, nxt in zip(starts, starts[1:]):
            lo = max(offset, s - sample.warmup) if s > offset else s  # the first: the prime only
            rows.append((lo, s, min(nxt, s + sample.length)))
    return rows


def whole_rows(n: int, warmup: int, pieces: int = 32) -> list[tuple[int, int, int]]:
    """Rows scoring all `n` positions of a stream in `pieces` pieces, each after the `warmup`
    characters before it: where each piece has at least 256 characters, the rows of
    scoring.evaluate_stream (what `charnext evaluate` scores); a shorter part is cut into pieces
    of at least MIN_PIECE, so that its standard error can still be had."""
    k = max(1, min(pieces, n // MIN_PIECE))
    size = -(-n // k)
    return [(max(0, s - warmup), s, min(s + size, n)) for s in range(0, n, size)]


def _power_of_two(k: float) -> int:
    """The largest power of two up to `k` (at least 1): runs whose speed differs a little choose
    the same sample, and a smaller sample's windows are among a larger one's."""
    return 1 << max(0, int(k).bit_length() - 1)


def _shares(k: int, sizes: list[int]) -> list[int]:
    """`k` split in proportion to `sizes` (largest remainders first; ties to the earlier)."""
    total = sum(sizes)
    exact = [k * n / total for n in sizes]
    shares = [math.floor(x) for x in exact]
    order = sorted(range(len(sizes)), key=lambda i: (shares[i] - exact[i], i))
    for i in order[: k - sum(shares)]:
        shares[i] += 1
    return shares


# -- lines -----------------------------------------------------------------------------------


def line_sample(lengths: list[int], read: float) -> Sample:
    """The sample of held-out lines (each `lengths` characters with its end) that reading about
    `read` characters affords: all of them where it can, else every n-th."""
    total, n = sum(lengths), len(lengths)
    k = _power_of_two(max(2, read * n / max(total, 1))) if read < total else n
    if k >= n:
        return Sample(n, 0, 0, total, whole=True)
    return Sample(k, 0, 0, sum(lengths[i] for i in line_picks(n, Sample(k, 0, 0, 0))))


def line_picks(n: int, sample: Sample) -> list[int]:
    """The indices of the held-out lines (of `n`) that `sample` scores."""
    if sample.whole:
        return list(range(n))
    return [i * n // sample.windows for i in range(sample.windows)]
