"""The loaded checkpoint: its fields, vocabulary, start, and the model or runner built on first use."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from charnext.config import ModelConfig
from charnext.errors import CheckpointError
from charnext.modeling.numpy_model import parameter_shapes
from charnext.text.paths import shown_path
from charnext.text.vocab import Vocab

if TYPE_CHECKING:  # torch is imported only where a torch model or a format-1 file needs it
    from charnext.inference.steps import Start
    from charnext.modeling.model import CharModel


@dataclass
class Checkpoint:
    """A loaded checkpoint: its model, vocabulary and everything recorded with it.

    `raw` holds the fields as loaded, tensors as numpy arrays. `model` is the torch CharModel
    (built on first use, on `device`); `runner` is what prediction and generation call, on the
    `engine` chosen at load time (numpy: no torch at all).
    """

    vocab: Vocab
    config: ModelConfig  # the model's configuration
    raw: dict = field(repr=False)  # every field, tensors as numpy arrays
    path: Path | None = None
    device: str = "cpu"  # where `model` lives
    engine: str = "torch"  # what `runner` uses: "numpy" or "torch"

    @cached_property
    def model(self) -> CharModel:
        """The torch model with the checkpoint's weights, in eval mode on `device`."""
        import torch

        from charnext.modeling.model import CharModel

        model = CharModel(self.config)
        weights = {k: torch.from_numpy(np.array(v)) for k, v in self.raw["state_dict"].items()}
        try:
            model.load_state_dict(weights)
        except RuntimeError as e:
            raise CheckpointError(f"{shown_path(self.path)} is damaged: {first_line(e)}") from None
        return model.to(self.device).eval()

    @cached_property
    def runner(self):
        """The forward pass prediction and generation use: numpy arrays in, numpy arrays out."""
        if self.engine == "numpy":
            from charnext.modeling.numpy_model import NumpyModel

            return NumpyModel(self.config, self.raw["state_dict"])
        from charnext.modeling.runner import TorchRunner

        return TorchRunner(self.model)

    @property
    def start(self) -> Start:
        """Where the model starts reading (a prime, and line mode's reset): every engine uses it."""
        from charnext.inference.steps import Start

        return Start.of(self.raw)

    @property
    def step(self) -> int:
        """Optimizer steps the model was trained for."""
        return int(self.raw.get("step") or 0)

    @property
    def history(self) -> dict:
        """Metric lists recorded during training."""
        return self.raw.get("history") or {}

    @property
    def train_config(self) -> dict:
        """The training configuration as recorded (plain dict)."""
        return self.raw.get("train_config") or {}

    @property
    def line_mode(self) -> bool:
        """Whether the model was trained in line mode (each line its own sequence)."""
        return bool(self.train_config.get("lines"))

    @property
    def summary(self) -> dict:
        """Final figures of the training run."""
        return self.raw.get("summary") or {}

    def parameter_table(self) -> list[tuple[str, tuple[int, ...], int]]:
        """(name, shape, count) of every weight tensor, in the model's order."""
        weights = self.raw["state_dict"]
        return [(name, shape, math.prod(shape)) for name, shape in parameter_shapes(self.config).items()
                if name in weights]  # fmt: skip

    def num_parameters(self) -> int:
        """Trainable parameter count."""
        return sum(count for _, _, count in self.parameter_table())


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
