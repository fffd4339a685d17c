"""charnext: next-character language models (RNN, GRU, LSTM) from the command line and Python.

Importing the package is cheap: neither numpy nor torch is loaded until a name of the API is
first used, so `charnext --help` stays fast. The public Python API is `charnext.api`; its one
list of names, `charnext.api.__all__`, is re-exported here lazily (so `charnext.load`,
`charnext.train`, `from charnext import *`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from charnext.version import __version__ as __version__

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors: the same names, eagerly
    from charnext.api import *  # noqa: F403


def __getattr__(name: str) -> Any:
    """`charnext.<name>`: the API's object, loaded on first use so that importing charnext does
    not import numpy or torch (PEP 562). `__all__` too is read from the API when asked for."""
    if name.startswith("__") and name != "__all__":
        raise AttributeError(f"module 'charnext' has no attribute {name!r}")
    api = _api()

    if name == "__all__":
        return ["__version__", *api.__all__]
    if name in api.__all__:
        return getattr(api, name)
    raise AttributeError(f"module 'charnext' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_api().__all__))


def _api():
    """charnext.api, imported on first use (by name: `from charnext import api` here would ask
    this module's __getattr__ for `api` first, and so again)."""
    import importlib

    return importlib.import_module("charnext.api")
