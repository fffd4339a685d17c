"""The runner: a model's forward pass on numpy arrays, on either engine, and the engine choice.

A runner is anything with `forward(idx, state) -> (logits, state)` taking and giving numpy
arrays (idx (B, T) integers, logits (B, T, vocab)), the state opaque. Two exist:
`charnext.modeling.numpy_model.NumpyModel` (no torch) and `TorchRunner` (a torch CharModel, on
any device). Everything that predicts (charnext.inference) calls a runner, never a model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from charnext.config import Engine
from charnext.errors import ConfigError

if TYPE_CHECKING:
    from charnext.modeling.model import CharModel


class Runner(Protocol):
    """A model's forward pass on numpy arrays."""

    def forward(self, idx: np.ndarray, state: Any = None) -> tuple[np.ndarray, Any]: ...


def as_runner(model: Runner | CharModel) -> Runner:
    """A torch CharModel (as the training loop passes) wrapped as a runner; a runner as is."""
    return model if hasattr(model, "forward") and not hasattr(model, "state_dict") else TorchRunner(model)


def resolve_engine(engine: str = "auto", device: str = "cpu") -> str:
    """ "numpy" or "torch" for an `Engine` choice on `device`.

    auto is numpy on the CPU and torch on a GPU. Measured on a 2-core CPU: numpy does
    everything predict and generate need with no start-up (no `import torch`, about 1.3 s) and
    runs one stream several times as fast as torch (whose per-call overhead outweighs the
    arithmetic of one character), and batches of samples at least as fast
    (benchmarks/generation_scaling.py). A GPU is torch's.
    """
    try:
        engine = Engine(engine).value
    except ValueError:
        raise ConfigError(f"unknown engine {engine!r}; choose auto, numpy or torch") from None
    on_cpu = str(device) == "cpu"
    if engine == "auto":
        return "numpy" if on_cpu else "torch"
    if engine == "numpy" and not on_cpu:
        raise ConfigError(
            f"the numpy engine runs on the CPU only: use engine torch (--engine torch) on {device}"
        )
    return engine


class TorchRunner:
    """A torch CharModel as a runner: numpy in and out, its state a tensor on the model's device."""

    def __init__(self, model: CharModel):
        self.model = model

    def forward(self, idx: np.ndarray, state: Any = None) -> tuple[np.ndarray, Any]:
        """idx (B, T) -> logits (B, T, V) as float32 numpy, and the new state (a tensor)."""
        import torch

        device = self.model.head.weight.device
        x = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64)).to(device)
        with torch.no_grad(), small_work(self.model, x.numel()):
            logits, state = self.model(x, state)
        return logits.float().cpu().numpy(), state


SMALL_WORK = 8_000_000  # multiply-adds of a forward call below which one CPU thread is fastest


@contextmanager
def small_work(model: CharModel, positions: int) -> Iterator[None]:
    """Settings for a small forward call on the CPU (`positions` = batch x characters), such as
    one generated character or a short prefix; restored right after the call.

    A small call (about one multiply-add per parameter and position) runs on one thread: it is
    over before a second thread helps, and where the cores are busy with other work, waiting
    for one costs far more (0.8 ms a generated character on one thread against 94 ms on two,
    measured on a loaded 2-core machine). And it uses PyTorch's own RNN kernels rather than
    oneDNN's, which lay the weights out anew on every call (megabytes for a 2x256 LSTM, a page
    fault per 4 KiB): paid once over a long window, but more than the step itself one character
    at a time (3,000 characters took 9.6 s with oneDNN and 2.4 s without, measured).
    """
    import torch

    if model.head.weight.device.type != "cpu" or positions * model.num_parameters() >= SMALL_WORK:
        yield
        return
    mkldnn, threads = torch.backends.mkldnn, torch.get_num_threads()
    was_enabled = mkldnn.enabled
    mkldnn.enabled = False
    torch.set_num_threads(1)
    try:
        yield
    finally:
        mkldnn.enabled = was_enabled
        torch.set_num_threads(threads)
