"""charnext: next-character language models (RNN, GRU, LSTM) from the command line and Python.

Importing the package is cheap: torch is loaded only when a model-related name is first used,
so `charnext --help` stays fast. The public Python API lives in `charnext.api` and its names
are re-exported here lazily.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {
    "load",
    "train",
    "predict",
    "generate",
    "evaluate",
    "surprisal",
    "generate_stream",
    "Model",
    "Vocab",
    "sequence_loss",
    "ModelConfig",
    "TrainConfig",
    "SampleConfig",
}

__all__ = ["__version__", *sorted(_API)]

if TYPE_CHECKING:  # pragma: no cover
    from charnext.api import (  # noqa: F401
        Model,
        ModelConfig,
        SampleConfig,
        TrainConfig,
        Vocab,
        evaluate,
        generate,
        generate_stream,
        load,
        predict,
        sequence_loss,
        surprisal,
        train,
    )


def _api_name(name: str) -> property:
    """`charnext.<name>`: the API's object, loaded on first use so that importing charnext does
    not import torch. `train`, `predict` and `evaluate` are also submodules; importing one sets
    it as an attribute of the package, which the setter ignores, so the API name keeps working."""

    def get(_package: types.ModuleType) -> Any:
        from charnext import api

        return getattr(api, name)

    def ignore(_package: types.ModuleType, _value: Any) -> None:
        pass

    return property(get, ignore)


class _Package(types.ModuleType):
    """The charnext package, whose API names are always the API's (see `_api_name`)."""


for _name in _API:
    setattr(_Package, _name, _api_name(_name))
sys.modules[__name__].__class__ = _Package
