"""What a checkpoint must hold, and the checks of each field that a damaged or hostile file
may hold as anything."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from charnext.errors import CheckpointError
from charnext.text.paths import shown_path
from charnext.version import __version__

if TYPE_CHECKING:  # torch is imported only where a torch model or a format-1 file needs it
    pass


FORMAT = "charnext-checkpoint"


FORMAT_VERSION = 2


_REQUIRED = {
    "format": str,
    "format_version": int,
    "model_config": dict,
    "vocab": list,
    "state_dict": dict,
}


ZIP, PICKLE = b"PK\x03\x04", b"\x80"  # how torch.save's files start (zip; the legacy pickle)


def check(path: Path, raw: Any) -> dict:
    """`raw` if it has the fields every checkpoint has, of the right kinds, and its optional
    fields (those inspect, evaluate and resuming read) are of their kinds where present."""
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{shown_path(path)} is not a charnext checkpoint")
    for key, kind in _REQUIRED.items():
        if not isinstance(raw.get(key), kind) or isinstance(raw.get(key), bool):
            raise CheckpointError(f"{shown_path(path)} is damaged: field '{key}' is missing or malformed")
    if raw["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{shown_path(path)} has checkpoint format {raw['format_version']}, newer than this charnext "
            f"{__version__} reads (format {FORMAT_VERSION}); upgrade charnext"
        )
    for key, ok in _OPTIONAL.items():
        if raw.get(key) is not None and not ok(raw[key], raw):
            raise CheckpointError(f"{shown_path(path)} is damaged: field '{key}' is malformed")
    return raw


def is_whole(v: Any) -> bool:
    """A whole number, 0 or more (not a bool)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0


def is_number(v: Any) -> bool:
    """A number (not a bool; NaN and infinities included: a loss may be one)."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _file_name(v: Any) -> bool:
    """A plain file name (the metrics log's, found beside the checkpoint): no folder in it."""
    return isinstance(v, str) and v not in ("", ".", "..") and not any(c in v for c in "/\\\0")


def _history(v: Any, raw: dict) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(xs, list) and all(x is None or is_number(x) for x in xs)
        for k, xs in v.items()
    )


def _text(v: Any, raw: dict) -> bool:
    return isinstance(v, dict) and isinstance(v.get("sha256"), str) and is_whole(v.get("length"))


def _summary(v: Any, raw: dict) -> bool:
    return isinstance(v, dict) and (v.get("elapsed") is None or is_number(v["elapsed"]))


def _counts(v: Any, raw: dict) -> bool:  # its length is checked with the vocabulary (model_of)
    return isinstance(v, list) and all(map(is_whole, v))


def _line_index(v: Any, raw: dict) -> bool:
    """Sorted 64-bit hashes of the training lines: a 1-D int64 tensor (numpy's or torch's)."""
    if isinstance(v, np.ndarray):
        return v.ndim == 1 and v.dtype == np.int64
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(v, torch.Tensor) and v.dim() == 1 and v.dtype == torch.int64


def _kind(kind: type) -> Callable[[Any, dict], bool]:
    return lambda v, raw: isinstance(v, kind)


# What the optional fields must be where present (None is always allowed): what inspect,
# evaluate and a resumed run read from them without further checks.
_OPTIONAL: dict[str, Callable[[Any, dict], bool]] = {
    "charnext_version": _kind(str),
    "created": _kind(str),
    "train_config": _kind(dict),
    "step": lambda v, raw: is_whole(v),
    "optimizer": _kind(dict),
    "history": _history,
    "text": _text,
    "summary": _summary,
    "resume": _kind(dict),
    "provenance": _kind(dict),
    "metrics_log": lambda v, raw: _file_name(v),
    "vocab_counts": _counts,
    "line_index": _line_index,
}
