"""The vocabulary: a text's unique characters in order of first appearance, and their codes."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from charnext.errors import TextError, UnknownCharactersError

# Characters are turned into code points in chunks so that memory stays a small multiple of
# the text itself, whatever its size.
_CHUNK = 1 << 22  # characters per chunk

if TYPE_CHECKING:  # torch loads only where a tensor is asked for: inference needs none
    import torch

# One notation everywhere: ␣ a space, ↵ a newline, backslash escapes for other invisible
# characters; the two marks themselves are escaped, so that a shown character is never ambiguous.
_NAMED = {" ": "␣", "\n": "↵", "\t": "\\t", "\r": "\\r", "\x00": "\\0", "␣": "\\u2423", "↵": "\\u21b5"}


def visible(ch: str) -> str:
    """Show a character so that a reader can see it: `␣` for a space, `↵` for a newline,
    `\\t`, `\\x1b`, `\\u200b`, ..."""
    if ch in _NAMED:
        return _NAMED[ch]
    category = unicodedata.category(ch)
    if category[0] in "CZ":  # control, format, surrogate, private use, separators
        code = ord(ch)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
    return ch


def visible_running(ch: str) -> str:
    """A character inside running text (a sample, a heat map): a space stays a space, any other
    as `visible` shows it."""
    return " " if ch == " " else visible(ch)


def visible_text(text: str, spaces: bool = False) -> str:
    """`visible` applied to every character of a short text; with `spaces`, a space stays a
    space (running text, such as a sample)."""
    return "".join((visible_running if spaces else visible)(ch) for ch in text)


def _code_points(text: str) -> np.ndarray:
    """The text's Unicode code points as uint32, with no per-character Python loop."""
    # surrogatepass keeps lone surrogates (from surrogateescape decoding) as their own code point.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def index_dtype(vocab_size: int) -> torch.dtype:
    """The smallest integer dtype that holds every index of a vocabulary of this size."""
    import torch

    return {np.uint8: torch.uint8, np.int16: torch.int16, np.int32: torch.int32}[_np_index_dtype(vocab_size)]


def _np_index_dtype(vocab_size: int) -> type:
    """`index_dtype` as a numpy type."""
    if vocab_size <= 256:
        return np.uint8
    if vocab_size <= 2**15:
        return np.int16
    return np.int32


class VocabBuilder:
    """Collects characters in order of first appearance from text given in pieces."""

    def __init__(self) -> None:
        self._first: dict[int, int] = {}  # code point -> offset of its first appearance
        self._seen = 0  # characters consumed so far
        self.counts: dict[int, int] = {}  # code point -> occurrences

    def update(self, text: str) -> None:
        """Add a piece of text (in order)."""
        for start in range(0, len(text), _CHUNK):
            cps = _code_points(text[start : start + _CHUNK])
            if not len(cps):
                continue
            counts = np.bincount(cps)  # O(n); at most 1.1M bins for the whole of Unicode
            present = np.flatnonzero(counts)
            new = [cp for cp in present.tolist() if cp not in self._first]
            if len(new) <= 64:  # the usual case after the first chunk: few or no new characters
                for cp in new:
                    self._first[cp] = self._seen + int(np.argmax(cps == cp))
            else:
                uniq, first = np.unique(cps, return_index=True)
                for cp, pos in zip(uniq.tolist(), first.tolist()):
                    self._first.setdefault(cp, self._seen + pos)
            for cp, n in zip(present.tolist(), counts[present].tolist()):
                self.counts[cp] = self.counts.get(cp, 0) + n
            self._seen += len(cps)

    def extend(self, other: VocabBuilder) -> None:
        """Add what another builder collected, as if its text came after this one's."""
        for cp, pos in other._first.items():
            self._first.setdefault(cp, self._seen + pos)
        for cp, n in other.counts.items():
            self.counts[cp] = self.counts.get(cp, 0) + n
        self._seen += other._seen

    def build(self) -> Vocab:
        """The vocabulary of everything added so far."""
        order = sorted(self._first, key=self._first.__getitem__)
        return Vocab(tuple(chr(cp) for cp in order))


@dataclass(frozen=True)
class Vocab:
    """An ordered set of characters; a character's index is its code for the model."""

    chars: tuple[str, ...]  # the characters, index order
    _table: np.ndarray = field(init=False, repr=False, compare=False)  # code point -> index

    def __post_init__(self) -> None:
        chars = tuple(self.chars)
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("a vocabulary holds single characters")
        if len(set(chars)) != len(chars):
            raise ValueError("a vocabulary holds each character once")
        object.__setattr__(self, "chars", chars)
        cps = np.array([ord(c) for c in chars], dtype=np.int64)
        table = np.full(int(cps.max()) + 1 if len(cps) else 1, -1, dtype=np.int32)
        table[cps] = np.arange(len(cps), dtype=np.int32)
        object.__setattr__(self, "_table", table)

    @classmethod
    def from_text(cls, text: str | Iterable[str]) -> Vocab:
        """Unique characters in order of first appearance (`hihello` gives h, i, e, l, o)."""
        builder = VocabBuilder()
        for piece in [text] if isinstance(text, str) else text:
            builder.update(piece)
        return builder.build()

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, ch: object) -> bool:
        return ch in self.chars

    @property
    def dtype(self) -> torch.dtype:
        """The compact integer dtype of encoded text."""
        return index_dtype(len(self.chars))

    def unknown(self, text: str) -> list[str]:
        """Characters of `text` that the vocabulary lacks, in order of first appearance."""
        return [c for c in Vocab.from_text(text).chars if c not in self.chars] if text else []

    def known(self, text: str, skip_unknown: bool = False) -> tuple[str, list[str]]:
        """The text without the characters the vocabulary lacks (with `skip_unknown`; without,
        an UnknownCharactersError naming them), and those characters."""
        unknown = self.unknown(text)
        if unknown and not skip_unknown:
            self.encode_array(text)  # raises UnknownCharactersError with the standard message
        if unknown:
            drop = set(unknown)
            text = "".join(c for c in text if c not in drop)
        return text, unknown

    def _lookup(self, cps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices of code points, and which of them the vocabulary knows."""
        table = self._table
        clipped = np.minimum(cps, len(table) - 1)
        idx = table[clipped]
        known = (idx >= 0) & (cps < len(table))
        return idx, known

    def encode(self, text: str, *, skip_unknown: bool = False) -> torch.Tensor:
        """Text -> 1-D tensor of indices in the compact dtype (`hihell` -> [0, 1, 0, 2, 3, 3]).

        Raises UnknownCharactersError naming the characters the vocabulary lacks, unless
        `skip_unknown`, which drops them.
        """
        import torch

        return torch.from_numpy(self.encode_array(text, skip_unknown=skip_unknown))

    def encode_array(self, text: str, *, skip_unknown: bool = False) -> np.ndarray:
        """`encode` as a numpy array (no torch)."""
        np_out = np.empty(len(text), dtype=_np_index_dtype(len(self.chars)))
        filled = 0
        for start in range(0, len(text), _CHUNK):
            cps = _code_points(text[start : start + _CHUNK])
            idx, known = self._lookup(cps)
            if not known.all():
                if not skip_unknown:
                    bad = Vocab.from_text(text).chars
                    unknown = [c for c in bad if c not in self.chars]
                    raise UnknownCharactersError(self.unknown_message(unknown), unknown)
                idx = idx[known]
            np_out[filled : filled + len(idx)] = idx
            filled += len(idx)
        return np_out[:filled]

    def unknown_message(self, unknown: list[str]) -> str:
        """One line naming unknown characters and what the vocabulary holds."""
        shown = " ".join(f"'{visible(c)}'" for c in unknown[:20])
        more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
        if len(self.chars) <= 80:
            holds = "".join(visible(c) for c in sorted(self.chars))  # sorted: easy to scan
            known = f"; the vocabulary holds {len(self.chars)} characters: {holds}"
        else:
            known = f"; the vocabulary holds {len(self.chars)} characters"
        noun = "character" if len(unknown) == 1 else "characters"
        return f"unknown {noun} {shown}{more} not in the vocabulary{known}"

    def decode(self, idx: Iterable[int] | torch.Tensor | np.ndarray) -> str:
        """Indices -> text."""
        if hasattr(idx, "reshape"):  # a tensor or an array
            idx = idx.reshape(-1).tolist()
        chars = self.chars
        return "".join(chars[i] for i in idx)

    def one_hot(self, text: str) -> torch.Tensor:
        """Text -> (len(text), len(vocab)) float tensor of one-hot rows, as in the lecture."""
        import torch

        return torch.nn.functional.one_hot(self.encode(text).long(), len(self.chars)).float()


def require_text(text: str, *, what: str = "text", minimum: int = 2) -> str:
    """Check a text is long enough to train on; return it."""
    if len(text) < minimum:
        raise TextError(
            f"the {what} has {len(text)} character{'s' if len(text) != 1 else ''}; "
            f"at least {minimum} are needed (one to read, one to predict)"
        )
    return text


def count_indices(data: torch.Tensor, vocab_size: int) -> list[int]:
    """Occurrences of each index in encoded text, counted in chunks to keep memory flat."""
    import torch

    counts = torch.zeros(vocab_size, dtype=torch.int64)
    for start in range(0, len(data), _CHUNK):
        counts += torch.bincount(data[start : start + _CHUNK].long(), minlength=vocab_size)
    return counts.tolist()
