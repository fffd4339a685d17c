"""charnext: next-character language models (RNN, GRU, LSTM) from the command line and Python.

Importing the package is cheap: torch is loaded only when a model-related name is first used,
so `charnext --help` stays fast. The public Python API lives in `charnext.api` and its names
are re-exported here lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from charnext.version import __version__

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


def __getattr__(name: str) -> Any:
    """`charnext.<name>`: the API's object, loaded on first use so that importing charnext does
    not import torch (PEP 562)."""
    if name in _API:
        from charnext import api

        return getattr(api, name)
    raise AttributeError(f"module 'charnext' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _API)
