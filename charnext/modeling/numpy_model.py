"""The character model's forward pass on numpy: inference without torch, same weights, same contract.

`NumpyModel(config, weights)` takes a CharModel's state_dict (as numpy arrays) and offers the
model's own call, `forward(idx, state) -> (logits, state)`, with the same state layout
(num_layers, B, state_size), the LSTM's (h, c) concatenated on the last axis. What can be
computed once is, when the model is built:

- the first layer's input: the embedding (or the one-hot vector) times the layer's input
  weights, plus its biases, is one (vocab, gates) table, so reading a character is a row lookup;
- the sigmoid gates' weights are halved, so that one `tanh` over every gate at once gives the
  sigmoids too (sigmoid(x) = (1 + tanh(x / 2)) / 2; halving is exact in floating point);
- the LSTM's gates are reordered (i, f, o, g), so that the three sigmoids are one slice.

Every sample of a batch goes through one matrix product per layer and step.
"""

from __future__ import annotations

import numpy as np

from charnext.config import Cell, ModelConfig
from charnext.modeling.products import Matrix

_GATES = {Cell.rnn: 1, Cell.gru: 3, Cell.lstm: 4}


def parameter_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every weight of a CharModel with this configuration, in the
    model's order (as its state_dict has them)."""
    c = config
    gates = _GATES[c.cell] * c.hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    if c.embedding_size:
        shapes["embedding.weight"] = (c.vocab_size, c.embedding_size)
    for layer in range(c.num_layers):
        width = (c.embedding_size or c.vocab_size) if layer == 0 else c.hidden_size
        shapes[f"rnn.weight_ih_l{layer}"] = (gates, width)
        shapes[f"rnn.weight_hh_l{layer}"] = (gates, c.hidden_size)
        shapes[f"rnn.bias_ih_l{layer}"] = (gates,)
        shapes[f"rnn.bias_hh_l{layer}"] = (gates,)
    shapes["head.weight"] = (c.vocab_size, c.hidden_size)
    shapes["head.bias"] = (c.vocab_size,)
    return shapes


# The forward pass is gate-major: the states are (in, B), one column per sample, and each
# product's result is (gates, B), so that each gate of every sample is one contiguous (H, B)
# block and the element-wise steps run over whole blocks. On the row-major (B, gates) layout
# each of them ran row by row over strided slices, 3-4x as slow (measured on an Intel Xeon, 64
# samples of a 2x256 LSTM: the step's non-product work fell from about 400 to about 200
# microseconds). How the products are computed, each sample's result the same in any batch:
# charnext.modeling.products.
SPLIT_ROWS = 16  # samples of a batch from which use_threads splits it (below, one thread is faster)


class _Bias:
    """A bias (n,) as equal columns (n, B), kept for the batch sizes met: adding a (n, 1) column
    to a (n, B) block runs row by row, twice as slow as adding a whole block."""

    def __init__(self, b: np.ndarray):
        self.b = b
        self.columns: dict[int, np.ndarray] = {}

    def __call__(self, batch: int) -> np.ndarray:
        if batch not in self.columns:
            if len(self.columns) > 64:
                self.columns.clear()
            self.columns[batch] = np.ascontiguousarray(np.broadcast_to(self.b[:, None], (len(self.b), batch)))
        return self.columns[batch]


class _GateMajor:
    """A layer's folded weights as the forward pass uses them: products probed for the sample
    counts that agree (Matrix), the first layer's table gate-major (gates, V), biases as columns."""

    def __init__(self, layer: _Layer):
        self.table = np.ascontiguousarray(layer.table.T) if layer.w_ih is None else None  # (gates, V)
        self.w_ih = None if layer.w_ih is None else Matrix(layer.w_ih)  # (in, gates)
        self.w_hh = Matrix(layer.w_hh)  # (H, gates)
        self.b_in = None if layer.w_ih is None else _Bias(layer.b_in)
        self.b_hn = _Bias(layer.b_hn) if getattr(layer, "b_hn", None) is not None else None


class _Layer:
    """One recurrent layer's weights, prepared as described above and kept as the model's page
    reads them, (in, gates) (charnext.inside.page); `gate_major()` gives them as the forward pass
    uses them."""

    FOLDED = ("table", "w_ih", "b_in", "w_hh", "b_hn")

    def __init__(self, cell: Cell, w_ih, w_hh, b_ih, b_hh, embedding=None, first: bool = False):
        H = w_hh.shape[1]
        self.cell = cell
        self.H = H
        # (gates, in) -> (in, gates), in float64 while folding; rows reordered and halved.
        w_ih, w_hh = w_ih.astype(np.float64), w_hh.astype(np.float64)
        b_ih, b_hh = b_ih.astype(np.float64), b_hh.astype(np.float64)
        if cell is Cell.lstm:
            order = np.r_[0 : 2 * H, 3 * H : 4 * H, 2 * H : 3 * H]  # i f g o -> i f o g
            w_ih, w_hh, b_ih, b_hh = w_ih[order], w_hh[order], b_ih[order], b_hh[order]
            scale = np.r_[np.full(3 * H, 0.5), np.ones(H)]
        elif cell is Cell.gru:
            scale = np.r_[np.full(2 * H, 0.5), np.ones(H)]  # r, z are sigmoids; n is a tanh
        else:
            scale = np.ones(H)
        w_ih, w_hh = w_ih * scale[:, None], w_hh * scale[:, None]
        b_ih, b_hh = b_ih * scale, b_hh * scale
        if cell is Cell.gru:
            # n = tanh(W_in x + b_in + r * (W_hn h + b_hn)): b_hn stays inside, with r
            b_in = b_ih + np.r_[b_hh[: 2 * H], np.zeros(H)]
            self.b_hn = b_hh[2 * H :].astype(np.float32)
        else:
            b_in = b_ih + b_hh
        if first:
            # (V, gates): a character's row is what the layer's input adds to its gates
            table = (embedding.astype(np.float64) @ w_ih.T if embedding is not None else w_ih.T) + b_in
            self.table = np.ascontiguousarray(table, dtype=np.float32)
            self.w_ih = None
        else:
            self.w_ih = np.ascontiguousarray(w_ih.T, dtype=np.float32)  # (H, gates)
            self.b_in = b_in.astype(np.float32)
        self.w_hh = np.ascontiguousarray(w_hh.T, dtype=np.float32)  # (H, gates)
        self._gm: _GateMajor | None = None

    def __setattr__(self, name: str, value) -> None:
        if name in self.FOLDED:  # a weight replaced (as the page's rounded copy of a model does)
            object.__setattr__(self, "_gm", None)
        object.__setattr__(self, name, value)

    def gate_major(self) -> _GateMajor:
        """The weights gate-major, made anew when a weight was replaced: assigning one drops them
        (comparing them at every step cost about 6 of a 64-stream step's 1,200 microseconds)."""
        if self._gm is None:
            self._gm = _GateMajor(self)
        return self._gm

    def step(self, gm: _GateMajor, gx: np.ndarray, h: np.ndarray, c, h_new: np.ndarray, c_new) -> None:
        """One step for every column: what the input adds to the gates `gx` (gates, B) and the
        state h (H, B) (and an LSTM's c) -> h_new (and c_new), written in place. `gx` is used up."""
        H = self.H
        if self.cell is Cell.lstm:
            g = gm.w_hh(h)  # (4H, B): i f o g, the sigmoid gates halved
            g += gx
            np.tanh(g, out=g)
            s = g[: 3 * H]  # sigmoid(i), sigmoid(f), sigmoid(o) = 0.5 tanh + 0.5
            s *= 0.5
            s += 0.5
            np.multiply(g[H : 2 * H], c, out=c_new)
            s[:H] *= g[3 * H :]  # i * g (i is used only here)
            c_new += s[:H]
            np.tanh(c_new, out=h_new)
            h_new *= s[2 * H :]
        elif self.cell is Cell.gru:
            gh = gm.w_hh(h)
            gh[2 * H :] += gm.b_hn(h.shape[1])
            rz = gx[: 2 * H]
            rz += gh[: 2 * H]
            np.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5  # sigmoid(r), sigmoid(z)
            n = rz[:H] * gh[2 * H :]
            n += gx[2 * H :]
            np.tanh(n, out=n)
            np.subtract(h, n, out=h_new)
            h_new *= rz[H:]
            h_new += n  # (1 - z) * n + z * h
        else:
            gh = gm.w_hh(h)
            gh += gx
            np.tanh(gh, out=h_new)

    def gates_in(self, gm: _GateMajor, x: np.ndarray) -> np.ndarray:
        """What the input adds to the gates, (gates, B): x is the characters (B,) for the first
        layer, else the layer below's output (H, B)."""
        if gm.table is not None:
            # take, not table[:, x]: that gives its columns in Fortran order, and adding them to a
            # C-ordered block took 110 microseconds against 45 (64 columns of 1024 gates); "wrap"
            # skips the bounds check (every index comes from the vocabulary) and is faster still
            return np.take(gm.table, x, axis=1, mode="wrap")
        g = gm.w_ih(x)
        g += gm.b_in(x.shape[1])
        return g


class NumpyModel:
    """idx (B, T) integer -> logits (B, T, vocab), with the state carried between calls,
    computed with numpy from a CharModel's weights (eval mode: no dropout).

    States are (num_layers, B, state_size) as on the torch engine, but laid out gate-major in
    memory (each a transposed view of a (num_layers, state_size, B) array): a state this model
    returned goes back in as it is, and any other is copied into that layout once."""

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray]):
        self.config = config
        c = config
        embedding = weights.get("embedding.weight") if c.embedding_size else None
        kinds = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        self.layers = [
            _Layer(
                c.cell,
                *(np.asarray(weights[f"rnn.{k}_l{i}"]) for k in kinds),
                embedding=embedding,
                first=i == 0,
            )
            for i in range(c.num_layers)
        ]
        self.head_w = np.ascontiguousarray(np.asarray(weights["head.weight"], dtype=np.float32).T)  # (H, V)
        self.head_b = np.asarray(weights["head.bias"], dtype=np.float32)
        self._head: tuple[Matrix, _Bias] | None = None
        self.workers = 1  # threads a large batch's columns are split across (see use_threads)
        self._pool = None

    @property
    def state_size(self) -> int:
        """Width of the state's last axis."""
        return self.config.hidden_size * (2 if self.config.cell is Cell.lstm else 1)

    def initial_state(self, batch_size: int) -> np.ndarray:
        """The zero state, (num_layers, B, state_size)."""
        return np.zeros((self.config.num_layers, self.state_size, batch_size), np.float32).transpose(0, 2, 1)

    def use_threads(self, threads: int) -> None:
        """Split the samples of a batch of SPLIT_ROWS or more across `threads` threads, each with
        BLAS on one thread (set so for the whole process). A sample's result is the same whatever
        the split (BUCKETS), and the threads overlap where numpy lets go of the GIL: in the
        products and in the element-wise steps."""
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        if threads > 1:
            threadpool_limits(1, user_api="blas")
            self._pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="charnext-rows")
        self.workers = max(1, threads)

    def forward(self, idx: np.ndarray, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """idx (B, T) integer, state (L, B, S) or None -> logits (B, T, V), new state (L, B, S)."""
        idx = np.asarray(idx, dtype=np.intp)
        B, T = idx.shape
        logits = np.empty((T, self.config.vocab_size, B), dtype=np.float32)
        new = self._run(idx, state, logits=logits)
        return logits.transpose(2, 0, 1), new

    __call__ = forward

    def layer_states(
        self, idx: np.ndarray, state: np.ndarray | None = None, keep: bool = True
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """idx (B, T) integer, state (L, B, S) or None -> the state of every layer after every
        character, and the new state (L, B, S). The states come per layer, first to last: an
        LSTM's cell state c then its hidden state h, a GRU's or an RNN's hidden state, each
        (B, T, H); none if not `keep` (only the new state is wanted). No head: nothing is
        predicted."""
        idx = np.asarray(idx, dtype=np.intp)
        B, T = idx.shape
        per = 2 if self.config.cell is Cell.lstm else 1
        kept = [np.empty((T, self.config.hidden_size, B), np.float32) for _ in range(per * len(self.layers))]
        new = self._run(idx, state, record=kept if keep else None)
        return ([np.ascontiguousarray(k.transpose(2, 0, 1)) for k in kept] if keep else []), new

    def _run(self, idx, state, logits=None, record=None) -> np.ndarray:
        """Every step of idx (B, T) from `state`; each step's logits into `logits` (T, V, B) and
        each layer's states into `record` [(T, H, B), ...], if given -> the new state (L, B, S)."""
        B = len(idx)
        L, S = len(self.layers), self.state_size
        old = np.zeros((L, S, B), np.float32) if state is None else np.asarray(state).transpose(0, 2, 1)
        if not old.flags.c_contiguous:
            old = np.ascontiguousarray(old, dtype=np.float32)
        new = np.empty((L, S, B), dtype=np.float32)
        if self.workers > 1 and B >= SPLIT_ROWS:  # columns in `workers` parts, one on this thread
            cuts = np.linspace(0, B, self.workers + 1).astype(int)
            parts = [slice(a, b) for a, b in zip(cuts, cuts[1:])]
            others = [self._pool.submit(self._part, idx, old, new, logits, record, p) for p in parts[1:]]
            self._part(idx, old, new, logits, record, parts[0])
            for f in others:
                f.result()
        else:
            self._steps(idx, old, new, logits, record)
        return new.transpose(0, 2, 1)

    def _part(self, idx, old, new, logits, record, p: slice) -> None:
        """_steps over the columns `p` only, on contiguous copies of their state (element-wise
        steps over a strided part of each block ran row by row: slower than the whole)."""
        mine = np.ascontiguousarray(old[:, :, p])
        out = np.empty_like(mine)
        part_logits = None if logits is None else np.empty(logits[:, :, p].shape, np.float32)
        part_record = None if record is None else [np.empty(r[:, :, p].shape, np.float32) for r in record]
        self._steps(idx[p], mine, out, part_logits, part_record)
        new[:, :, p] = out
        if logits is not None:
            logits[:, :, p] = part_logits
        for r, part in zip(record or [], part_record or []):
            r[:, :, p] = part

    def _steps(self, idx, old, new, logits, record) -> None:
        """The recurrent stack over idx (B, T), gate-major: the state `old` (L, S, B) -> `new`,
        written in place, as are `logits` (T, V, B) and `record`, if given."""
        T = idx.shape[1]
        H = self.config.hidden_size
        lstm = self.config.cell is Cell.lstm
        prepared = [layer.gate_major() for layer in self.layers]
        head = self._head_gate_major() if logits is not None else None
        state = list(old)  # per layer (S, B)
        for t in range(T):
            x = idx[:, t]
            for i, (layer, gm) in enumerate(zip(self.layers, prepared)):
                s = state[i]
                out = new[i] if t == T - 1 else np.empty_like(s)  # this step's state (S, B)
                h_new, c_new = out[:H], (out[H:] if lstm else None)
                layer.step(gm, layer.gates_in(gm, x), s[:H], s[H:] if lstm else None, h_new, c_new)
                if record is not None:
                    if lstm:
                        record[2 * i][t] = c_new
                    record[(1 + lstm) * i + lstm][t] = h_new
                state[i] = out
                x = h_new
            if head is not None:
                w, b = head
                logits[t] = w(x)
                logits[t] += b(x.shape[1])

    def __setattr__(self, name: str, value) -> None:
        if name in ("head_w", "head_b"):  # replaced (as the page's rounded copy of a model does)
            object.__setattr__(self, "_head", None)
        object.__setattr__(self, name, value)

    def _head_gate_major(self) -> tuple[Matrix, _Bias]:
        """The head as the forward pass uses it: its product and its bias as columns, made anew
        when its weights were replaced."""
        if self._head is None:
            self._head = Matrix(self.head_w), _Bias(self.head_b)
        return self._head
