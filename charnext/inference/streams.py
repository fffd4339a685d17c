"""Independent streams drawn together: continuous batching.

Each stream has its own prompt, sampling settings, PCG32 stream, stop strings and length. Its
prompt is read alone; then every active stream advances by one character per `step()`, all of
them in one batched forward pass, their states joined along the batch axis. A stream joins
(`add`) or leaves (`drop`, or when it ends) between two steps, as a request takes a slot of
llama.cpp's server and gives it back.

A seeded stream draws the same characters alone as in any batch, and as `generate` (and so
`charnext predict --seed S`) draws them: the draw is per row (charnext.inference.sampling), and
on the numpy engine every matrix product takes its samples a fixed number at a time
(charnext.modeling.products.BUCKETS), so no row's arithmetic depends on the rows beside it.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from charnext.config import SampleConfig
from charnext.inference.pcg32 import Pcg32
from charnext.inference.sampling import choose_each, stream_rng
from charnext.inference.steps import Readable, read

if TYPE_CHECKING:
    pass


# Prompts whose reading a batch keeps, the latest first: requests that share a prompt (a
# client that asks again, or many with one preamble) read it once. Reading a 20-character prompt
# alone costs about 4 ms (2x256 LSTM, Intel Xeon), as long as drawing 32 streams 4 characters;
# 32 clients sending one prompt at once spent 40% of their time reading it 32 times.
READ_CACHE = 32


@dataclass(frozen=True)
class StreamSpec:
    """What one stream is asked to draw."""

    prompt: str  # read first (known characters only), from the model's start
    length: int  # characters drawn at most
    sample: SampleConfig = field(default_factory=SampleConfig)  # temperature, top-k, top-p, seed
    stream: int = 0  # PCG32 stream of the seed: sample i of a request draws from stream i
    stop: tuple[str, ...] = ()  # the stream ends when its text reaches one; the stop is not kept
    logprobs: int = 0  # alternatives recorded with each drawn character (0: only its own)


@dataclass
class Token:
    """A drawn character and how likely the model found it (natural logarithms)."""

    char: str
    logprob: float  # of this character, at temperature 1
    top: list[tuple[str, float]] = field(default_factory=list)  # the most likely, best first


@dataclass
class Stream:
    """One stream in a batch: what it was asked, what it has drawn, how it ended."""

    spec: StreamSpec
    seed: int  # the seed its draws come from (the spec's, or a fresh one)
    tokens: list[Token] = field(default_factory=list)  # released: never part of a stop string
    finish_reason: str | None = None  # "stop" or "length" once it has ended
    prompt_logprobs: list[Token | None] = field(default_factory=list)  # each prompt character's
    key: Any = None  # the caller's, to tell streams apart
    _held: list[Token] = field(default_factory=list)  # drawn, but perhaps the start of a stop
    _rng: Pcg32 | None = None
    _last: np.ndarray | None = None  # logits (V,) the next draw is made from

    @property
    def text(self) -> str:
        """The characters released so far."""
        return "".join(t.char for t in self.tokens)

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def finish(self, reason: str) -> None:
        """End here: what was held back is released (it met no stop string), the reason kept."""
        self.tokens += self._held
        self._held.clear()
        self.finish_reason = reason

    @property
    def mean_logprob(self) -> float:
        """The mean log-probability of its characters (-inf: none)."""
        return sum(t.logprob for t in self.tokens) / len(self.tokens) if self.tokens else float("-inf")

    @property
    def drawn(self) -> int:
        """Characters drawn so far (released or held)."""
        return len(self.tokens) + len(self._held)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Natural-log probabilities (float64) along the last axis."""
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return z


class StreamBatch:
    """Streams advanced together, one character each per `step()`; see the module's docstring."""

    def __init__(self, model: Readable):
        self.model = model  # reading starts where the model does (its prime, its line mode)
        self.runner, self.vocab, self.start = model.runner, model.vocab, model.start
        self.line_stop = ("\n",) if self.start.lines else ()  # a line model completes one line
        self.streams: list[Stream] = []  # the active ones, in the order of the state's rows
        self.state: Any = None  # the runner's state, its batch axis the streams' order
        self._reads: OrderedDict[str, tuple] = OrderedDict()  # prompt -> what reading it gave

    def __len__(self) -> int:
        return len(self.streams)

    def add(self, spec: StreamSpec, key: Any = None, echo: bool = False) -> Stream:
        """Read `spec.prompt` alone and join the batch; with `echo`, score the prompt's own
        characters too. A stream asked for no characters ends at once ("length")."""
        return self.add_many([spec], [key], echo)[0]

    def add_many(self, specs: list[StreamSpec], keys: list | None = None, echo: bool = False) -> list[Stream]:
        """`add` each of `specs`, reading each distinct prompt once (streams of one prompt start
        from the same state: read alone, a row is the same as in any batch)."""
        keys = keys if keys is not None else [None] * len(specs)
        read_once = {}  # every prompt read before any stream joins: an error leaves the batch as it was
        for prompt in dict.fromkeys(spec.prompt for spec in specs):
            read_once[prompt] = self._read(prompt)
        return [self._start(spec, key, echo, *read_once[spec.prompt]) for spec, key in zip(specs, keys)]

    def _read(self, prompt: str) -> tuple[np.ndarray | None, Any]:
        """The prompt read alone: (logits (1, T, V) or None, state), from the READ_CACHE prompts
        read last where it is one of them (a row is the same read alone whenever it is read)."""
        if prompt in self._reads:
            self._reads.move_to_end(prompt)
            return self._reads[prompt]
        done = read(self.model, prompt, 1)
        self._reads[prompt] = done
        if len(self._reads) > READ_CACHE:
            self._reads.popitem(last=False)
        return done

    def _start(self, spec: StreamSpec, key: Any, echo: bool, logits: np.ndarray | None, state: Any) -> Stream:
        seed = spec.sample.seed if spec.sample.seed is not None else secrets.randbits(64)
        stream = Stream(spec, seed, key=key, _rng=stream_rng(seed, spec.stream))
        if echo:
            stream.prompt_logprobs = self._scored(spec.prompt, logits, spec.logprobs)
        if logits is None:  # no prompt, no prime: the first character is uniform
            stream._last = np.zeros(len(self.vocab), dtype=np.float32)
        else:
            stream._last = logits[0, -1]
        if spec.length < 1:
            stream.finish_reason = "length"
            return stream
        self._join(stream, state)
        return stream

    def drop(self, stream: Stream) -> None:
        """Leave the batch before the end (a client gone): nothing more is drawn for it."""
        if stream in self.streams:
            self._leave([stream])

    def step(self) -> list[Stream]:
        """Draw one character for every active stream, then read them all in one batched
        forward pass; the streams whose text or end changed, in the batch's order."""
        if not self.streams:
            return []
        last = np.stack([s._last for s in self.streams])  # (B, V)
        chosen = choose_each(last, [s.spec.sample for s in self.streams], [s._rng for s in self.streams])
        logp = log_softmax(last)  # (B, V): what each drawn character's log-probability is read from
        touched, ended = [], []
        for stream, index, row in zip(self.streams, chosen.tolist(), logp):
            if self._take(stream, index, row):
                touched.append(stream)
            if stream.done:
                ended.append(stream)
        if ended:
            keep = [i for i, s in enumerate(self.streams) if not s.done]
            chosen = chosen[keep]
            self._leave(ended)
        if self.streams:
            logits, self.state = self.runner.forward(chosen[:, None], self.state)  # (B, 1, V)
            for stream, row in zip(self.streams, logits[:, -1]):
                stream._last = row
        return touched

    def run(self, specs: list[StreamSpec], on_char: Callable[[str], None] | None = None) -> list[Stream]:
        """Draw these streams to their ends together; the first one's characters go to `on_char`
        as they are released."""
        drawn = self.add_many(specs)
        shown = 0
        while len(self):
            self.step()
            if on_char is not None and drawn:
                for token in drawn[0].tokens[shown:]:
                    on_char(token.char)
                shown = len(drawn[0].tokens)
        return drawn

    def best(
        self, specs: list[StreamSpec], keep: int, on_char: Callable[[str], None] | None = None
    ) -> list[str]:
        """The texts of the `keep` streams of highest mean log-probability among these (all of
        them, in order, where `keep` is their number): `predict --best-of`."""
        drawn = self.run(specs, on_char)
        if keep < len(drawn):
            drawn = sorted(drawn, key=lambda s: -s.mean_logprob)[:keep]
        return [s.text for s in drawn]

    # -- inside ---------------------------------------------------------------------------------

    def _join(self, stream: Stream, state: Any) -> None:
        self.streams.append(stream)
        self.state = state if self.state is None else _concat(self.state, state)

    def _leave(self, gone: list[Stream]) -> None:
        rows = [i for i, s in enumerate(self.streams) if s not in gone]
        self.streams = [self.streams[i] for i in rows]
        self.state = _rows(self.state, rows) if rows else None

    def _take(self, stream: Stream, index: int, logp: np.ndarray) -> bool:
        """Record the character drawn (`logp`: the log-probabilities it was drawn from); release
        what can no longer be part of a stop string, end at a stop or the length. Whether
        anything changed for the caller."""
        token = self._token(index, logp, stream.spec.logprobs)
        stops = stream.spec.stop + self.line_stop
        if not stops:  # nothing is held back
            stream.tokens.append(token)
            if len(stream.tokens) >= stream.spec.length:
                stream.finish("length")
            return True
        stream._held.append(token)
        held = "".join(t.char for t in stream._held)
        found = [(held.find(s), s) for s in stops if s and s in held]
        released = len(stream.tokens)
        if found:
            cut = min(found)[0]  # the earliest stop: what precedes it is the text
            stream.tokens += stream._held[:cut]
            stream._held.clear()
            stream.finish_reason = "stop"
        else:
            keep = _longest_stop_prefix(held, stops)
            stream.tokens += stream._held[: len(stream._held) - keep]
            del stream._held[: len(stream._held) - keep]
            if stream.drawn >= stream.spec.length:
                stream.finish("length")
        return len(stream.tokens) > released or stream.done

    def _token(self, index: int, logp: np.ndarray, alternatives: int) -> Token:
        chars = self.vocab.chars
        top = []
        if alternatives:
            best = np.argsort(-logp, kind="stable")[:alternatives]
            top = [(chars[i], float(logp[i])) for i in best]
        return Token(chars[index], float(logp[index]), top)

    def _scored(self, prompt: str, logits: np.ndarray | None, alternatives: int) -> list[Token | None]:
        """Each prompt character with its log-probability given those before it (the first has
        none: read ... from the prime, its logits are not kept)."""
        if not prompt or logits is None:
            return [None] * len(prompt)
        logp = log_softmax(logits[0])  # (T, V): row t predicts prompt[t + 1]
        index = self.vocab.encode_array(prompt)
        out: list[Token | None] = [None]
        for t in range(1, len(prompt)):
            token = self._token(int(index[t]), logp[t - 1], alternatives)
            out.append(token)
        return out


def _longest_stop_prefix(text: str, stops: tuple[str, ...]) -> int:
    """How many characters at the end of `text` could begin one of `stops` (held back)."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best


def _concat(a: Any, b: Any) -> Any:
    """Two runner states joined along the batch axis (axis 1: (layers, batch, ...))."""
    if isinstance(a, tuple):
        return tuple(_concat(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):  # the numpy engine's, gate-major in memory: kept so
        return np.concatenate([a.transpose(0, 2, 1), b.transpose(0, 2, 1)], axis=2).transpose(0, 2, 1)
    import torch

    return torch.cat([a, b], dim=1)


def _rows(state: Any, rows: list[int]) -> Any:
    """The state of these batch rows only."""
    if isinstance(state, tuple):
        return tuple(_rows(s, rows) for s in state)
    if isinstance(state, np.ndarray):  # the numpy engine's, gate-major in memory: kept so
        return np.take(state.transpose(0, 2, 1), rows, axis=2).transpose(0, 2, 1)
    return state[:, rows].contiguous()
