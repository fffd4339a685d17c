"""The numpy engine's matrix products: one sample a column, each sample's result the same in
any batch.

A product takes its samples in blocks whose size is one of BUCKETS (a short block padded
with zero samples), so that a sample's result never depends on the samples beside it: a
stream reads the same alone as in any batch (charnext.inference.streams), and a seeded sample
equals `predict --seed`. BLAS does not promise this: OpenBLAS gives a row other bits in a
one-row product (gemv) than in a larger one, and switches kernels by size (measured on an
Intel Xeon: the head of a 2x256 LSTM over 65 characters changes its results from 61 rows up).
So each weight matrix is probed once for the longest run of BUCKETS that agree; a product
pads a few rows up to the run's smallest size and cuts many into blocks of its largest.
"""

from __future__ import annotations

import numpy as np

BUCKETS = (2, 4, 8, 16, 32, 64, 128, 256)
GATE_MAJOR_FROM = 4  # samples from which a Matrix may use the gate-major call (see Matrix)


class Matrix:
    """A weight matrix w (in, out) of the forward pass, and its product with samples laid out
    one a column, x (in, N) -> (out, N), each sample's column the same in any batch.

    The product is computed one of two ways, both writing the gate-major result directly:
    as the row-major problem x.T @ w, which OpenBLAS answers fast for one or two samples (the
    gate-major call needs four samples to agree with larger batches: four times the work for
    a lone stream), or, from GATE_MAJOR_FROM samples, as w.T @ x, about 12% faster at 64
    samples (Intel Xeon). The two are used together only where a probe finds that they give
    the same bits over the same run of sizes as the row-major call alone."""

    def __init__(self, w: np.ndarray):
        self.w = w
        self.wT: np.ndarray | None = None
        plain = agreeing_sizes(self._call, w.shape[0])
        self.wT = np.ascontiguousarray(w.T)
        mixed = agreeing_sizes(self._call, w.shape[0])
        if mixed[0] > plain[0] or mixed[1] < plain[1]:
            self.wT = None
        self.sizes = plain if self.wT is None else mixed

    def _call(self, x: np.ndarray) -> np.ndarray:
        """The product for x (in, m), C-ordered: every product is one of these two calls, on
        arrays laid out alike (OpenBLAS gives other bits for the same numbers at another stride)."""
        if x.shape[1] < GATE_MAJOR_FROM:  # the result transposed as it comes (a view): for so
            return (x.T @ self.w).T  # few samples, asking numpy to write it transposed costs more
        if self.wT is not None:
            return self.wT @ x
        out = np.empty((self.w.shape[1], x.shape[1]), dtype=np.float32)
        np.matmul(x.T, self.w, out=out.T)
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return column_product(x, self._call, self.sizes)


def agreeing_sizes(call, depth: int) -> tuple[int, int]:
    """(smallest, largest): the longest run of BUCKETS over which `call` (x (depth, m) ->
    (out, m)) gives each sample the same bits at every size, probed with varied samples: each
    size against two products of half its size over the same samples."""
    x = np.sin(np.arange(BUCKETS[-1] * depth) * 0.7).astype(np.float32).reshape(depth, -1)
    agrees = []  # agrees[i]: BUCKETS[i + 1] gives the bits of BUCKETS[i]
    for small, size in zip(BUCKETS, BUCKETS[1:]):
        parts = (x[:, :small], x[:, small:size])
        halves = np.concatenate([call(np.ascontiguousarray(p)) for p in parts], axis=1)
        agrees.append(bool(np.array_equal(call(np.ascontiguousarray(x[:, :size])), halves)))
    best, lo = (0, 0), 0
    for i in range(len(BUCKETS)):
        if i > 0 and not agrees[i - 1]:
            lo = i
        if i - lo > best[1] - best[0]:
            best = (lo, i)
    return BUCKETS[best[0]], BUCKETS[best[1]]


def column_product(x: np.ndarray, call, sizes: tuple[int, int]) -> np.ndarray:
    """call(x) for x (K, N), one column per sample, in blocks of sizes[1] samples, a short one
    padded up to a bucket of at least sizes[0] samples."""
    smallest, block = sizes
    N = x.shape[1]
    if N == block or (smallest <= N < block and N in BUCKETS):
        return np.ascontiguousarray(call(np.ascontiguousarray(x)))
    if N < smallest:  # one short block, padded
        padded = np.zeros((x.shape[0], smallest), dtype=np.float32)
        padded[:, :N] = x
        done = call(padded)[:, :N]
        return done if N == 1 else np.ascontiguousarray(done)  # one column: contiguous as it is
    out = None
    for i in range(0, N, block):
        part = x[:, i : i + block]
        m = part.shape[1]
        size = next(b for b in BUCKETS if b >= max(m, smallest))
        padded = np.zeros((x.shape[0], size), dtype=np.float32)
        padded[:, :m] = part
        done = call(padded)
        if out is None:
            out = np.empty((done.shape[0], N), dtype=np.float32)
        out[:, i : i + m] = done[:, :m]
    return out
