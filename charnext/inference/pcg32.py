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
