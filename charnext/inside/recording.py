"""Every unit's state over a text, on either engine: a long text read in pieces side by side,
or, for a line-mode model, every line on its own.

A layer stepper runs a model's recurrent layers over a batch of characters and gives each
layer's state after every character, as numpy arrays whatever the engine:
`NumpyModel.layer_states` on the numpy engine (no torch), `TorchLayers.layer_states`
(inside/torch_layers.py) for a torch model. Both take and give the model's state (L, B, S).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np

from charnext.config import ModelConfig

CHUNK = 1024  # characters per call: (PIECES, CHUNK, 3H) gates stay small (4096: 15-25% slower)
PIECES = 16  # most pieces of a long text read side by side, as one batch
WARMUP = 1024  # characters each piece but the first reads before it (unrecorded)

OnChunk = Callable[[int, list[np.ndarray]], None]


class LayerStepper(Protocol):
    """A model's recurrent layers, every layer's state after every character on numpy arrays."""

    config: ModelConfig

    def initial_state(self, batch_size: int) -> np.ndarray: ...

    def layer_states(
        self, idx: np.ndarray, state: np.ndarray | None = None, keep: bool = True
    ) -> tuple[list[np.ndarray], np.ndarray]: ...


def layer_stepper(model: Any) -> LayerStepper:
    """The stepper for a checkpoint's runner or a model: a stepper (a NumpyModel: no torch) is
    its own; a torch CharModel, or the one a TorchRunner holds, steps with TorchLayers."""
    if hasattr(model, "layer_states"):
        return model
    from charnext.inside.torch_layers import TorchLayers

    return TorchLayers(getattr(model, "model", model))


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's matrix products on one thread while recording, then as they were.

    Recording is a long chain of small products (a batch of 16 states times a layer's recurrent
    weights), each waiting for the one before: as in torch (inside/torch_layers.py), a second
    thread gains little on a quiet machine and, on a busy one, waiting for it at every step
    costs many times over; numpy's BLAS threads also spin beside torch's on the torch engine.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def pieces(n: int) -> list[tuple[int, int]]:
    """(start, end) of the pieces a text of n characters is read in, side by side.

    A text up to 2 x CHUNK characters is one piece, read exactly. A longer one is cut into up
    to PIECES equal pieces read as one batch: a batch of 16 costs a step about twice what one
    sequence does, so the text takes about a third of the time. Each piece but the first reads
    the WARMUP characters before it first (or its own length, at least CHUNK / 2, if shorter),
    so its state is what a reader of the whole text would have: a trained network's memory
    fades long before (a test checks the states match).
    """
    if n <= 2 * CHUNK:
        return [(0, n)]
    size = math.ceil(n / min(PIECES, math.ceil(n / CHUNK)))
    return [(s, min(n, s + size)) for s in range(0, n, size)]


def record(model: Any, idx: np.ndarray, on_chunk: OnChunk, newline: int | None = None) -> None:
    """Run idx (T,) through `model` (a runner, a NumpyModel or a torch CharModel; see
    `layer_stepper`) from the zero state and hand over every unit's states.

    For each chunk of the text calls on_chunk(start, states): the chunk's offset in the text and
    one (t, H) float32 array per layer and kind, in the order of `all_units`. A stream is read
    in the pieces of `pieces`, each in chunks of up to CHUNK characters. With `newline` (the
    index of the line break, for a line-mode model) every line is read on its own, as training
    read it: from the zero state, after a line break.
    """
    stepper = layer_stepper(model)
    idx = np.asarray(idx, dtype=np.int64)
    with one_blas_thread():
        if newline is None:
            _record_stream(stepper, idx, on_chunk)
        else:
            _record_lines(stepper, idx, on_chunk, newline)


def _padded(rows: list[np.ndarray], length: int) -> np.ndarray:
    """Rows of up to `length` indices as one batch (B, length), padded at their ends with 0:
    what the padding gives is dropped."""
    batch = np.zeros((len(rows), length), dtype=np.int64)
    for b, row in enumerate(rows):
        batch[b, : len(row)] = row
    return batch


def _record_stream(stepper: LayerStepper, idx: np.ndarray, on_chunk: OnChunk) -> None:
    spans = pieces(len(idx))
    state = stepper.initial_state(len(spans))
    if len(spans) > 1:  # warm-up: each piece but the first reads the characters before it, unrecorded
        w = min(WARMUP, spans[1][0])
        _, state = stepper.layer_states(np.stack([idx[s - w : s] if s else idx[:w] for s, _ in spans]),
                                        state, keep=False)  # fmt: skip
        state[:, 0] = 0  # the first piece starts the text: the zero state
    longest = max(e - s for s, e in spans)
    for t0 in range(0, longest, CHUNK):
        t1 = min(t0 + CHUNK, longest)
        rows = [idx[s + t0 : min(e, s + t1)] for s, e in spans]
        states, state = stepper.layer_states(_padded(rows, t1 - t0), state)
        for b, ((s, _), r) in enumerate(zip(spans, rows)):
            if len(r):
                on_chunk(s + t0, [layer[b, : len(r)] for layer in states])


def _record_lines(stepper: LayerStepper, idx: np.ndarray, on_chunk: OnChunk, newline: int) -> None:
    # Each line break starts a line: the state at it is the zero state after reading it, and the
    # line's characters follow. The text's first line reads a line break first, unrecorded.
    starts = sorted({0, *np.flatnonzero(idx == newline).tolist()})
    lines = [(s, e) for s, e in zip(starts, starts[1:] + [len(idx)])]
    group: list[tuple[int, int]] = []

    def flush() -> None:
        rows = [idx[s:e] if idx[s] == newline else np.r_[newline, idx[s:e]] for s, e in group]
        states, _ = stepper.layer_states(_padded(rows, max(len(r) for r in rows)))
        for b, ((s, e), r) in enumerate(zip(group, rows)):
            skip = len(r) - (e - s)  # the unrecorded line break in front of the first line
            on_chunk(s, [layer[b, skip : len(r)] for layer in states])
        group.clear()

    for s, e in lines:  # batches of lines, up to PIECES x CHUNK padded characters each
        if group and (len(group) + 1) * max(e - s + 1, *(b - a + 1 for a, b in group)) > PIECES * CHUNK:
            flush()
        group.append((s, e))
    if group:
        flush()
