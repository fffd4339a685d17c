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


# Every product of the forward pass takes its rows in blocks whose size is one of BUCKETS (a
# short block padded with zero rows), so that a row's result never depends on the rows beside
# it: a stream reads the same alone as in any batch (charnext.inference.streams), and a seeded
# sample equals `predict --seed`. BLAS does not promise this: OpenBLAS gives a row other bits in
# a one-row product (gemv) than in a larger one, and switches kernels by size (measured on an
# Intel Xeon: the head of a 2x256 LSTM over 65 characters changes its results from 61 rows up).
# So each weight matrix is probed once for the longest run of BUCKETS that agree; a product
# pads a few rows up to the run's smallest size and cuts many into blocks of its largest.
BUCKETS = (2, 4, 8, 16, 32, 64, 128, 256)
SPLIT_ROWS = 16  # rows of a batch from which use_threads splits it (below, one thread is faster)


def agreeing_sizes(w: np.ndarray) -> tuple[int, int]:
    """(smallest, largest): the longest run of BUCKETS over which a product with `w` gives each
    row the same bits at every size, probed with varied rows: each size against two products
    of half its size over the same rows."""
    x = np.sin(np.arange(BUCKETS[-1] * w.shape[0]) * 0.7).astype(np.float32).reshape(BUCKETS[-1], -1)
    agrees = []  # agrees[i]: BUCKETS[i + 1] gives the bits of BUCKETS[i]
    for small, size in zip(BUCKETS, BUCKETS[1:]):
        halves = np.concatenate([x[:small] @ w, x[small:size] @ w])
        agrees.append(bool(np.array_equal(x[:size] @ w, halves)))
    best, lo = (0, 0), 0
    for i in range(len(BUCKETS)):
        if i > 0 and not agrees[i - 1]:
            lo = i
        if i - lo > best[1] - best[0]:
            best = (lo, i)
    return BUCKETS[best[0]], BUCKETS[best[1]]


def row_product(x: np.ndarray, w: np.ndarray, sizes: tuple[int, int]) -> np.ndarray:
    """x (M, K) @ w (K, N) in blocks of sizes[1] rows, a short one padded up to a bucket of at
    least sizes[0] rows."""
    smallest, block = sizes
    M = x.shape[0]
    if M == block or (smallest <= M < block and M in BUCKETS):
        return x @ w
    out = np.empty((M, w.shape[1]), dtype=np.float32)
    for i in range(0, M, block):
        part = x[i : i + block]
        m = len(part)
        size = next(b for b in BUCKETS if b >= max(m, smallest))
        if size == m:
            np.matmul(part, w, out=out[i : i + m])
        else:
            padded = np.zeros((size, x.shape[1]), dtype=np.float32)
            padded[:m] = part
            out[i : i + m] = (padded @ w)[:m]
    return out


class _Products:
    """Row-independent products with weight matrices, each probed once (a matrix that replaces
    another, as the page's rounded weights do in a copy of the model, is probed anew)."""

    def __init__(self):
        self.sizes: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}  # id -> (matrix, sizes)

    def __call__(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        known = self.sizes.get(id(w))
        if known is None or known[0] is not w:
            known = self.sizes[id(w)] = (w, agreeing_sizes(w))
        return row_product(x, w, known[1])


class _Layer:
    """One recurrent layer, its weights transposed for `x @ w` and prepared as described above."""

    def __init__(self, cell: Cell, w_ih, w_hh, b_ih, b_hh, embedding=None, first: bool = False):
        H = w_hh.shape[1]
        self.cell = cell
        self.H = H
        if cell is Cell.lstm:  # the affine that turns the tanh of the i, f, o gates into sigmoids
            self.gate_scale = np.r_[np.full(3 * H, 0.5), np.ones(H)].astype(np.float32)
            self.gate_shift = np.r_[np.full(3 * H, 0.5), np.zeros(H)].astype(np.float32)
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
        self.product = _Products()

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """What the input adds to the gates: idx (B, T) for the first layer, else (B, T, H)
        -> (B, T, gates), all steps at once."""
        if self.w_ih is None:
            return self.table[x]
        B, T, H = x.shape
        out = self.product(x.reshape(B * T, H), self.w_ih)  # one 2-D product (a 3-D one loops over B)
        out += self.b_in
        return out.reshape(B, T, -1)

    def run(self, gx: np.ndarray, state: np.ndarray, new: np.ndarray, cells: np.ndarray | None = None):
        """Gate inputs (B, T, gates) and state (B, S) -> outputs (B, T, H); the final state is
        written into `new` (B, S), whose h part the output of a single step is a view of. An
        LSTM writes its cell state after every step into `cells` (B, T, H), if given."""
        B, T, _ = gx.shape
        H = self.H
        out = np.empty((B, T, H), dtype=np.float32) if T > 1 else None
        if self.cell is Cell.lstm:
            h, c = state[:, :H], state[:, H:]
            for t in range(T):
                last = t == T - 1
                h_new = new[:, :H] if last else np.empty((B, H), dtype=np.float32)
                c_new = new[:, H:] if last else np.empty((B, H), dtype=np.float32)
                g = self.product(h, self.w_hh)  # (B, 4H): i f o g
                g += gx[:, t]
                np.tanh(g, out=g)
                # sigmoid(i), sigmoid(f), sigmoid(o) = 0.5 tanh + 0.5, g as it is: two passes over
                # whole rows (x * 1 + 0 is x, bit for bit), faster than two over their strided 3H
                g *= self.gate_scale
                g += self.gate_shift
                s = g[:, : 3 * H]
                np.multiply(s[:, H : 2 * H], c, out=c_new)
                s[:, :H] *= g[:, 3 * H :]  # i * g (i is used only here)
                c_new += s[:, :H]
                np.tanh(c_new, out=h_new)
                h_new *= s[:, 2 * H :]
                h, c = h_new, c_new
                if out is not None:
                    out[:, t] = h
                if cells is not None:
                    cells[:, t] = c
        else:
            h = state
            for t in range(T):
                h_new = new if t == T - 1 else np.empty((B, H), dtype=np.float32)
                gh = self.product(h, self.w_hh)
                if self.cell is Cell.gru:
                    gh[:, 2 * H :] += self.b_hn
                    rz = gx[:, t, : 2 * H] + gh[:, : 2 * H]
                    np.tanh(rz, out=rz)
                    rz *= 0.5
                    rz += 0.5  # sigmoid(r), sigmoid(z)
                    n = rz[:, :H] * gh[:, 2 * H :]
                    n += gx[:, t, 2 * H :]
                    np.tanh(n, out=n)
                    np.subtract(h, n, out=h_new)
                    h_new *= rz[:, H:]
                    h_new += n  # (1 - z) * n + z * h
                else:
                    gh += gx[:, t]
                    np.tanh(gh, out=h_new)
                h = h_new
                if out is not None:
                    out[:, t] = h
        return out if out is not None else h[:, None]


class NumpyModel:
    """idx (B, T) integer -> logits (B, T, vocab), with the state carried between calls,
    computed with numpy from a CharModel's weights (eval mode: no dropout)."""

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
        self.product = _Products()
        self.workers = 1  # threads a large batch's rows are split across (see use_threads)
        self._pool = None

    @property
    def state_size(self) -> int:
        """Width of the state's last axis."""
        return self.config.hidden_size * (2 if self.config.cell is Cell.lstm else 1)

    def initial_state(self, batch_size: int) -> np.ndarray:
        """The zero state, (num_layers, B, state_size)."""
        return np.zeros((self.config.num_layers, batch_size, self.state_size), dtype=np.float32)

    def use_threads(self, threads: int) -> None:
        """Split the rows of a batch of SPLIT_ROWS or more across `threads` threads, each with
        BLAS on one thread (set so for the whole process). A row's result is the same whatever
        the split (BUCKETS), and the threads overlap where numpy lets go of the GIL: in
        the products and in large element-wise steps."""
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        if threads > 1:
            threadpool_limits(1, user_api="blas")
            self._pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="charnext-rows")
        self.workers = max(1, threads)

    def forward(self, idx: np.ndarray, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """idx (B, T) integer, state (L, B, S) or None -> logits (B, T, V), new state (L, B, S)."""
        B = len(idx)
        if self.workers > 1 and B >= SPLIT_ROWS:
            return self._split(idx, state)
        return self._forward(idx, state)

    def _split(self, idx: np.ndarray, state: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The batch's rows in `workers` parts, one on this thread, the others on the pool's."""
        B = len(idx)
        state = self.initial_state(B) if state is None else state
        cuts = np.linspace(0, B, self.workers + 1).astype(int)
        parts = [(idx[a:b], state[:, a:b]) for a, b in zip(cuts, cuts[1:])]
        others = [self._pool.submit(self._forward, *part) for part in parts[1:]]
        done = [self._forward(*parts[0])] + [f.result() for f in others]
        return np.concatenate([d[0] for d in done]), np.concatenate([d[1] for d in done], axis=1)

    def _forward(self, idx: np.ndarray, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        x, new_state = self._layers(idx, state)
        B, T, _ = x.shape
        logits = self.product(x.reshape(B * T, -1), self.head_w)
        logits += self.head_b
        return logits.reshape(B, T, -1), new_state  # (B, T, V), (L, B, S)

    __call__ = forward

    def layer_states(
        self, idx: np.ndarray, state: np.ndarray | None = None, keep: bool = True
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """idx (B, T) integer, state (L, B, S) or None -> the state of every layer after every
        character, and the new state (L, B, S). The states come per layer, first to last: an
        LSTM's cell state c then its hidden state h, a GRU's or an RNN's hidden state, each
        (B, T, H); none if not `keep` (only the new state is wanted). No head: nothing is
        predicted."""
        recorded: list[np.ndarray] | None = [] if keep else None
        _, new_state = self._layers(idx, state, recorded)
        return recorded or [], new_state

    def _layers(
        self, idx: np.ndarray, state: np.ndarray | None, recorded: list | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The recurrent stack: idx (B, T) -> the top layer's outputs (B, T, H), the new state."""
        idx = np.asarray(idx, dtype=np.intp)
        B, T = idx.shape
        if state is None:
            state = self.initial_state(B)
        new_state = np.empty((len(self.layers), B, self.state_size), dtype=np.float32)
        lstm = self.config.cell is Cell.lstm
        x = idx
        for layer, s, new in zip(self.layers, state, new_state):
            cells = np.empty((B, T, layer.H), dtype=np.float32) if recorded is not None and lstm else None
            x = layer.run(layer.inputs(x), s, new, cells)  # (B, T, H)
            if recorded is not None:
                recorded += [cells, x] if lstm else [x]
        return x, new_state
