"""Every layer's state after every character on the torch engine (`--engine torch`, and a GPU),
for recording units: the model's recurrent stack run one layer at a time.

nn.LSTM/GRU/RNN return only the top layer's outputs over time (and an LSTM no cell states at
all); run one layer at a time, the outputs of every layer are there, and an LSTM's cell states
follow from its gates. The numpy engine's counterpart is `NumpyModel.layer_states`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from charnext.config import Cell
from charnext.modeling.model import CharModel, eval_mode


def _single_layers(model: CharModel) -> list[nn.Module]:
    """One single-layer recurrent module per layer, sharing the model's weights (no copy)."""
    rnn = model.rnn
    layers = []
    for layer in range(model.config.num_layers):
        one = type(rnn)(
            rnn.input_size if layer == 0 else rnn.hidden_size, rnn.hidden_size, 1, batch_first=True
        )
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(one, f"{name}_l0", getattr(rnn, f"{name}_l{layer}"))
        one.flatten_parameters() if hasattr(one, "flatten_parameters") else None
        layers.append(one.to(model.head.weight.device).eval())
    return layers


def _lstm_cells(one: nn.LSTM, x: torch.Tensor, out: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor):
    """The cell states c (B, T, H) of a single-layer LSTM that read x (B, T, in) and gave out
    (B, T, H) from (h0, c0) (B, H): one batched gate product, then the elementwise recurrence
    c_t = f_t * c_{t-1} + i_t * g_t."""
    B, T, H = out.shape
    h_prev = torch.cat([h0[:, None], out[:, :-1]], dim=1)  # (B, T, H): each step's starting h
    n = 3 * H  # the input, forget and cell gates; the output gate is not needed
    w_ih, w_hh = one.weight_ih_l0[:n].float().cpu(), one.weight_hh_l0[:n].float().cpu()
    bias = (one.bias_ih_l0[:n] + one.bias_hh_l0[:n]).float().cpu()
    gates = torch.addmm(bias, x.reshape(B * T, -1), w_ih.T).addmm_(h_prev.reshape(B * T, H), w_hh.T)
    i, f, g = gates.view(B, T, n).transpose(0, 1).chunk(3, dim=-1)  # each (T, B, H)
    f = torch.sigmoid(f).contiguous().numpy()
    u = (torch.sigmoid(i) * torch.tanh(g)).contiguous().numpy()  # what each step writes
    c = np.empty_like(u)
    prev = c0.numpy()
    for t in range(T):  # elementwise: a few µs a step, far below the matrix products
        prev = c[t] = f[t] * prev + u[t]
    return c.transpose(1, 0, 2)  # (B, T, H)


@contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """Run on one CPU thread, then restore the thread count.

    Each step of a recurrent layer is a small matrix product that must wait for the one
    before: a second thread gains little on a quiet machine and, on a busy one, waiting for it
    at every step costs far more. 100,000 characters through a 2x256 LSTM, read as one
    sequence, measured on a loaded 2-core machine: 20 s on one thread; 26-29 s with only the
    recurrent layers on one thread; 80-95 s on two.
    """
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class TorchLayers:
    """A torch CharModel's recurrent stack, one layer at a time, numpy in and out: the same
    `layer_states` as `NumpyModel`'s, with the same state layout (L, B, S)."""

    def __init__(self, model: CharModel):
        self.model = model
        self.config = model.config
        self.device = model.head.weight.device
        self.layers = _single_layers(model)

    def initial_state(self, batch_size: int) -> np.ndarray:
        """The zero state, (num_layers, B, state_size): an LSTM's (h, c) side by side."""
        return np.zeros((len(self.layers), batch_size, self.model.state_size), dtype=np.float32)

    def layer_states(
        self, idx: np.ndarray, state: np.ndarray | None = None, keep: bool = True
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """idx (B, T), state (L, B, S) or None -> every layer's states after every character
        (per layer: an LSTM's c then h, otherwise h; (B, T, H) each; none if not `keep`) and
        the new state (L, B, S)."""
        chunk = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64)).to(self.device)
        state = self.initial_state(len(chunk)) if state is None else state
        with torch.no_grad(), _one_thread(self.device), eval_mode(self.model):
            m = self.model
            x = m.embedding(chunk) if m.embedding is not None else nn.functional.one_hot(
                chunk, m.config.vocab_size).float()  # fmt: skip
            states, new_state = [], []
            for one, s in zip(self.layers, torch.from_numpy(state).to(self.device)):
                x, new, recorded = self._layer(one, x, s, keep)
                states += recorded
                new_state.append(new)
            return states, torch.stack(new_state).float().cpu().numpy()

    def _layer(self, one: nn.Module, x: torch.Tensor, state: torch.Tensor, keep: bool):
        """One layer over x (B, T, in) from its state (B, S) -> its outputs (B, T, H), its new
        state (B, S) and what it records (numpy, (B, T, H) each)."""
        if self.config.cell is not Cell.lstm:
            out, h = one(x, state[None].contiguous())
            return out, h[0], [out.float().cpu().numpy()] if keep else []
        h0, c0 = (s[None].contiguous() for s in state.chunk(2, dim=-1))
        out, (h, c) = one(x, (h0, c0))  # out (B, T, H)
        recorded = []
        if keep:
            x_cpu, out_cpu = x.float().cpu(), out.float().cpu()
            recorded = [_lstm_cells(one, x_cpu, out_cpu, h0[0].float().cpu(), c0[0].float().cpu()),
                        out_cpu.numpy()]  # fmt: skip
        return out, torch.cat([h[0], c[0]], dim=-1), recorded
