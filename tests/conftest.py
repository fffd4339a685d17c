"""Shared fixtures: small real texts made here (tests never read ../shared)."""

from __future__ import annotations

import pytest
import torch

# A few lines of a public-domain poem, repeated: enough text for validation and batching.
POEM = (
    "Tyger Tyger, burning bright,\n"
    "In the forests of the night;\n"
    "What immortal hand or eye,\n"
    "Could frame thy fearful symmetry?\n"
)


@pytest.fixture
def poem() -> str:
    """About 3,000 characters of English verse."""
    return POEM * 25


@pytest.fixture
def names() -> str:
    """A small list of names, one per line."""
    base = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail"]
    return "\n".join(base * 12) + "\n"


@pytest.fixture(autouse=True)
def _small_terminal(monkeypatch):
    """Rich renders at 80 columns without colour, as in a pipe."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread; two threads on a busy 2-core machine crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def hihello(tmp_path_factory):
    """A tiny LSTM (fp32, CPU) that has memorised hihello."""
    from charnext import api

    path = tmp_path_factory.mktemp("shared") / "hi.pt"
    api.train(
        "hihello", out=path, steps=150, lr=0.01, hidden_size=32, num_layers=1, precision="fp32", device="cpu"
    )
    return path
