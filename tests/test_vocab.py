"""Vocabulary: order of first appearance, encode/decode, one-hot, unknown characters."""

from __future__ import annotations

import pytest
import torch

from charnext.errors import UnknownCharactersError
from charnext.text.vocab import Vocab, VocabBuilder, count_indices, index_dtype, visible


def test_lecture_vocabulary_and_codes():
    v = Vocab.from_text("hihello")
    assert v.chars == ("h", "i", "e", "l", "o")
    assert v.encode("hihell").tolist() == [0, 1, 0, 2, 3, 3]
    assert v.encode("ihello").tolist() == [1, 0, 2, 3, 3, 4]
    assert v.decode(v.encode("ihello")) == "ihello"
    assert v.decode([1, 0, 2]) == "ihe"


def test_one_hot_rows_match_the_lecture():
    oh = Vocab.from_text("hihello").one_hot("hihell")
    assert oh.shape == (6, 5)
    assert oh[0].tolist() == [1, 0, 0, 0, 0]  # h
    assert oh[3].tolist() == [0, 0, 1, 0, 0]  # e
    assert torch.equal(oh.sum(dim=1), torch.ones(6))


@pytest.mark.parametrize(
    "text",
    [
        "안녕하세요안녕",
        "emoji 🙂🚀 and ZWJ 👩‍💻",
        "tabs\tand\r\nwindows lines\x00\x1b[0m",
        "e\u0301 é not normalised",
    ],
)
def test_round_trip_any_unicode(text):
    v = Vocab.from_text(text)
    assert v.decode(v.encode(text)) == text
    assert len(v) == len(set(text))


def test_text_is_not_normalised():
    v = Vocab.from_text("e\u0301é")  # decomposed and precomposed stay different characters
    assert v.chars == ("e", "\u0301", "é")


def test_unknown_characters_are_named_and_escaped():
    v = Vocab.from_text("hihello")
    with pytest.raises(UnknownCharactersError) as info:
        v.encode("hi there\u200b!")
    message = str(info.value)
    assert info.value.unknown == [" ", "t", "r", "\u200b", "!"]
    assert "'␣'" in message and "'\\u200b'" in message and "'!'" in message
    assert "ehilo" in message  # what the vocabulary holds, sorted


def test_skip_unknown_drops_them():
    v = Vocab.from_text("abc")
    assert v.decode(v.encode("a-b-c", skip_unknown=True)) == "abc"


def test_compact_dtypes():
    assert index_dtype(65) == torch.uint8
    assert index_dtype(300) == torch.int16
    assert index_dtype(40_000) == torch.int32
    korean = "".join(chr(0xAC00 + i) for i in range(400))
    v = Vocab.from_text(korean)
    assert v.encode(korean).dtype == torch.int16
    assert v.decode(v.encode(korean)) == korean


def test_builder_over_pieces_equals_whole_text():
    text = "the quick brown fox 🦊 jumps over the lazy dog 개"
    b = VocabBuilder()
    for i in range(0, len(text), 7):
        b.update(text[i : i + 7])
    assert b.build() == Vocab.from_text(text)


def test_counts():
    v = Vocab.from_text("hihello")
    assert count_indices(v.encode("hihello"), len(v)) == [2, 1, 1, 2, 1]


def test_visible():
    assert visible(" ") == "␣"
    assert visible("\n") == "↵"
    assert visible("\t") == "\\t"
    assert visible("\x1b") == "\\x1b"
    assert visible("안") == "안"
