"""One model contract for every cell."""

from __future__ import annotations

import pytest
import torch

from charnext.config import Cell, ModelConfig
from charnext.errors import ConfigError
from charnext.modeling.model import CharModel


@pytest.mark.parametrize("cell", list(Cell))
@pytest.mark.parametrize("embedding_size", [0, 8])
def test_shapes_and_state_for_each_cell(cell, embedding_size):
    model = CharModel(
        ModelConfig(vocab_size=5, cell=cell, hidden_size=16, num_layers=2, embedding_size=embedding_size)
    )
    idx = torch.randint(0, 5, (3, 7))
    logits, state = model(idx)
    assert logits.shape == (3, 7, 5)
    assert state.shape == (2, 3, model.state_size)
    # carrying the state over two halves equals one pass over the whole
    a, s = model(idx[:, :4])
    b, _ = model(idx[:, 4:], s)
    assert torch.allclose(torch.cat([a, b], dim=1), logits, atol=1e-5)


def test_one_hot_input_has_no_embedding():
    model = CharModel(ModelConfig(vocab_size=5, hidden_size=4, num_layers=1, embedding_size=0))
    assert model.embedding is None
    assert model.rnn.input_size == 5


@pytest.mark.parametrize(
    "bad",
    [
        dict(hidden_size=0),
        dict(num_layers=-1),
        dict(embedding_size=-3),
        dict(dropout=1.0),
        dict(cell="transformer"),
    ],
)
def test_bad_configs_are_rejected(bad):
    with pytest.raises((ConfigError, ValueError)):
        ModelConfig(vocab_size=5, **bad)
