"""PCG32: the one random generator every sampler of charnext draws from, in Python and in the page.

A small, fully specified generator (M. E. O'Neill's pcg32, "XSH RR" output, 64-bit state), so
that `charnext predict --seed S` and the model's web page (charnext/inside/web/charnext.js, the
same dozen lines) draw the same numbers for the same seed. numpy's default generator (PCG64 behind
a SeedSequence) is specified too, but is far more to rewrite in JavaScript; a draw per
generated character costs under a microsecond either way.

    state, inc: 64-bit unsigned; seeding (seed, stream):
        inc = 2 * stream + 1; state = 0; step(); state += seed; step()
    step(): state = state * 6364136223846793005 + inc                  (mod 2^64)
    next(): old = state; step()
            x = ((old >> 18) ^ old) >> 27 (low 32 bits); r = old >> 59
            return x rotated right by r (32 bits)
    random(): next() / 2^32, uniform in [0, 1)

Sample i of a batch draws from stream i, so the first sample of `--num-samples 3 --seed S` is
the text of `--seed S` alone.
"""

from __future__ import annotations

import numpy as np

MULTIPLIER = 6364136223846793005
MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1


class Pcg32:
    """One stream of PCG32 (Python integers: one draw per generated character is cheap)."""

    def __init__(self, seed: int, stream: int = 0):
        self.inc = ((stream << 1) | 1) & MASK64
        self.state = 0
        self._step()
        self.state = (self.state + seed) & MASK64  # any int: negative or huge seeds wrap mod 2^64
        self._step()

    def _step(self) -> None:
        self.state = (self.state * MULTIPLIER + self.inc) & MASK64

    def next_u32(self) -> int:
        """The next 32-bit output."""
        old = self.state
        self._step()
        x = (((old >> 18) ^ old) >> 27) & MASK32
        rot = old >> 59
        return ((x >> rot) | (x << (-rot & 31))) & MASK32

    def random(self) -> float:
        """Uniform in [0, 1): the next output over 2^32."""
        return self.next_u32() / 4294967296.0


class Pcg32Rows:
    """Many PCG32 streams stepped together, as numpy arrays: row i draws what `generators[i]`
    would, one number per row per call. A batch of 64 samples drew its numbers in about 40
    microseconds one Python generator at a time, and in about 8 so (Intel Xeon)."""

    def __init__(self, generators: list[Pcg32]):
        self.state = np.array([g.state for g in generators], dtype=np.uint64)
        self.inc = np.array([g.inc for g in generators], dtype=np.uint64)

    def __len__(self) -> int:
        return len(self.state)

    def random(self, count: int | None = None) -> np.ndarray:
        """Uniform in [0, 1), float64, one for each row (for the first `count` rows only: the
        others do not move)."""
        if count is None or count >= len(self.state):
            old = self.state
            self.state = old * _MULTIPLIER + self.inc  # wraps mod 2^64, as unsigned arrays do
        else:
            old = self.state[:count].copy()
            self.state[:count] = old * _MULTIPLIER + self.inc[:count]
        # the rotation in 32-bit lanes (casting keeps the low 32 bits): fewer, narrower operations
        # took a batch of 64 from 8.9 to 7.2 microseconds (Intel Xeon)
        x = (((old >> _18) ^ old) >> _27).astype(np.uint32)
        rot = (old >> _59).astype(np.uint32)
        return ((x >> rot) | (x << (-rot & _R31))) * (1 / 4294967296.0)

    def rows(self, index) -> Pcg32Rows:
        """These rows only, as a new set (the draws of each go on where they were)."""
        out = Pcg32Rows.__new__(Pcg32Rows)
        out.state, out.inc = self.state[index], self.inc[index]
        return out

    def join(self, other: Pcg32Rows) -> Pcg32Rows:
        """These rows, then `other`'s."""
        out = Pcg32Rows.__new__(Pcg32Rows)
        out.state, out.inc = np.concatenate([self.state, other.state]), np.concatenate([self.inc, other.inc])
        return out


_MULTIPLIER = np.uint64(MULTIPLIER)
_18, _27, _59 = (np.uint64(n) for n in (18, 27, 59))
_R31 = np.uint32(31)
