"""The character model: input encoding, a recurrent cell (RNN, GRU or LSTM) and a linear head."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from charnext.config import Cell, ModelConfig

_CELLS = {Cell.rnn: nn.RNN, Cell.gru: nn.GRU, Cell.lstm: nn.LSTM}


class CharModel(nn.Module):
    """idx (B, T) -> logits (B, T, vocab), with a recurrent state carried between calls.

    The state is one tensor (num_layers, B, state_size) for every cell: the LSTM's (h, c) pair
    is concatenated on the last axis, so callers never branch on the cell type.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_size) if c.embedding_size else None
        input_size = c.embedding_size or c.vocab_size
        self.rnn = _CELLS[c.cell](
            input_size,
            c.hidden_size,
            c.num_layers,
            batch_first=True,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden_size, c.vocab_size)

    @property
    def state_size(self) -> int:
        """Width of the state tensor's last axis."""
        return self.config.hidden_size * (2 if self.config.cell is Cell.lstm else 1)

    def forward(
        self, idx: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """idx (B, T) integer, state (L, B, S) or None -> logits (B, T, V), new state (L, B, S)."""
        idx = idx.long()
        if self.embedding is not None:
            x = self.embedding(idx)  # (B, T, E)
        else:
            x = nn.functional.one_hot(idx, self.config.vocab_size).to(self.head.weight.dtype)
        if self.config.cell is Cell.lstm:
            hx = None if state is None else tuple(s.contiguous() for s in state.chunk(2, dim=-1))
            out, (h, c) = self._recur(x, hx)  # out (B, T, H)
            new_state = torch.cat([h, c], dim=-1)
        else:
            out, new_state = self._recur(x, state)
        logits = self.head(self.drop(out))  # (B, T, V)
        return logits, new_state

    def _recur(self, x: torch.Tensor, hx):
        """The recurrent stack; in training with weight_drop, on recurrent weights with a
        DropConnect mask drawn once per call, i.e. the same for every step of the window
        (AWD-LSTM's weight drop), which PyTorch's fused kernels run at full speed."""
        p = self.config.weight_drop
        if not (self.training and p > 0):
            return self.rnn(x, hx)
        weights = dict(self.rnn.named_parameters())
        for name in [n for n in weights if n.startswith("weight_hh_l")]:
            weights[name] = nn.functional.dropout(weights[name], p, training=True)
        return torch.func.functional_call(self.rnn, weights, (x, hx))

    def set_dropout(self, p: float) -> None:
        """Change the dropout of a built model (between layers and before the head)."""
        self.config.dropout = p
        self.drop.p = p
        self.rnn.dropout = p if self.config.num_layers > 1 else 0.0

    def set_weight_drop(self, p: float) -> None:
        """Change the weight drop of a built model (read at each training step's forward pass)."""
        self.config.weight_drop = p

    def num_parameters(self) -> int:
        """Trainable parameter count."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode (no dropout) for a block, then back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
