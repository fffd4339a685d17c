"""Prepared data: streaming encoding into a memory-mapped token file, and training from it."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from typer.testing import CliRunner

from charnext.cli.app import app
from charnext.config import TrainConfig
from charnext.errors import ConfigError, TextError
from charnext.storage import checkpoint as ckpt
from charnext.text.prepare import META, TOKENS, PreparedDataError, load_prepared, prepare, read_chunks
from charnext.text.reading import decode_utf8, fingerprint
from charnext.text.vocab import Vocab
from charnext.training.runs import new_run, resume_run

SMALL = dict(hidden_size=16, num_layers=1, embedding_size=8)


# Korean (3 bytes a character), emoji (4 bytes), accents (2 bytes) and ASCII, so that small
# chunks split characters at every possible byte.
MIXED = "hihello 안녕하세요 🙂🚀 café naïve\n" * 7


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 1 << 20])
def test_round_trip_with_chunks_splitting_characters(tmp_path, chunk):
    src = tmp_path / "t.txt"
    src.write_text(MIXED, encoding="utf-8")
    result = prepare(src, tmp_path / "p", chunk_bytes=chunk)
    data = load_prepared(tmp_path / "p")
    assert data.vocab == Vocab.from_text(MIXED)  # order of first appearance, as from the text
    assert data.vocab.decode(data.tokens) == MIXED
    assert data.fingerprint == fingerprint(MIXED)
    assert data.counts == [MIXED.count(c) for c in data.vocab.chars]
    assert (result.characters, result.bytes, result.dtype) == (len(MIXED), len(MIXED.encode()), "uint8")
    assert data.tokens.dtype == torch.uint8
    assert (tmp_path / "p" / TOKENS).stat().st_size == len(MIXED)


def test_pieces_keep_split_characters_whole(tmp_path):
    src = tmp_path / "t.txt"
    src.write_text("🙂안", encoding="utf-8")
    pieces = [text for _, text in read_chunks(src, chunk_bytes=3)]
    assert "".join(pieces) == "🙂안"
    assert all("\ufffd" not in p for p in pieces)


@pytest.mark.parametrize(
    "size, dtype, itemsize",
    [(256, torch.uint8, 1), (257, torch.int16, 2), (2**15, torch.int16, 2), (2**15 + 1, torch.int32, 4)],
)
def test_smallest_dtype_that_fits(tmp_path, size, dtype, itemsize):
    # code points from U+4E00 on: all encodable, all distinct
    text = "".join(chr(0x4E00 + i) for i in range(size)) + chr(0x4E00)
    src = tmp_path / "t.txt"
    src.write_text(text, encoding="utf-8")
    prepare(src, tmp_path / "p", chunk_bytes=1000)
    data = load_prepared(tmp_path / "p")
    assert data.tokens.dtype == dtype
    assert (tmp_path / "p" / TOKENS).stat().st_size == len(text) * itemsize
    assert int(data.tokens[-1]) == 0 and int(data.tokens[size - 1]) == size - 1
    assert data.vocab.decode(data.tokens[-5:]) == text[-5:]


@pytest.mark.parametrize("chunk", [1, 4, 1 << 20])
def test_invalid_utf8_names_the_byte_offset(tmp_path, chunk):
    raw = "안녕 hi ".encode() + b"\xff\xfe" + b"more"
    src = tmp_path / "bad.txt"
    src.write_bytes(raw)
    with pytest.raises(TextError) as whole:
        decode_utf8(raw, str(src))
    with pytest.raises(TextError, match="byte offset 10 ") as streamed:
        prepare(src, tmp_path / "p", chunk_bytes=chunk)
    assert "byte offset 10 " in str(whole.value)
    assert str(streamed.value).split("(")[0] == str(whole.value).split("(")[0]
    assert not (tmp_path / "p" / META).exists()


def test_truncated_character_at_the_end(tmp_path):
    src = tmp_path / "cut.txt"
    src.write_bytes("ab안".encode()[:-1])  # the last character lacks its final byte
    with pytest.raises(TextError, match="byte offset 2 "):
        prepare(src, tmp_path / "p", chunk_bytes=2)


def test_missing_empty_and_tiny_sources(tmp_path):
    with pytest.raises(TextError, match="no such file"):
        prepare(tmp_path / "nope.txt", tmp_path / "p")
    (tmp_path / "one.txt").write_text("x")
    with pytest.raises(TextError, match="at least 2"):
        prepare(tmp_path / "one.txt", tmp_path / "p")


@pytest.fixture
def prepared(tmp_path, poem):
    src = tmp_path / "poem.txt"
    src.write_text(poem, encoding="utf-8")
    prepare(src, tmp_path / "p", chunk_bytes=97)
    return tmp_path / "p"


def _edit_meta(folder, **changes):
    meta = json.loads((folder / META).read_text())
    meta.update(changes)
    (folder / META).write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda p: (p / META).unlink(), "holds no meta.json"),
        (lambda p: (p / META).write_text("{not json"), "unreadable"),
        (lambda p: (p / META).write_text("[]"), "does not describe"),
        (lambda p: _edit_meta(p, format_version=99), "format 99"),
        (lambda p: _edit_meta(p, length=5), "damaged"),
        (lambda p: _edit_meta(p, dtype="float32"), "damaged"),
        (lambda p: _edit_meta(p, dtype="int16"), "does not fit"),
        (
            lambda p: _edit_meta(p, vocab=["a", "a"] + json.loads((p / META).read_text())["vocab"][2:]),
            "damaged",
        ),
        (lambda p: (p / TOKENS).write_bytes((p / TOKENS).read_bytes()[:-3]), "prepare the text again"),
        (lambda p: (p / TOKENS).unlink(), "holds no tokens.bin"),
    ],
)
def test_damaged_folders_are_refused(prepared, damage, match):
    damage(prepared)
    with pytest.raises(PreparedDataError, match=match):
        load_prepared(prepared)


def test_not_a_folder(tmp_path):
    with pytest.raises(PreparedDataError, match="charnext prepare"):
        load_prepared(tmp_path / "nothing")


def test_tokens_are_a_read_only_map_not_a_copy(prepared):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's not-writable warning is handled, not shown
        data = load_prepared(prepared)
    first = int(data.tokens[0])
    with open(prepared / TOKENS, "r+b") as f:  # the tensor sees the file: it is a map, not a copy
        f.write(bytes([first + 1]))
    assert int(data.tokens[0]) == first + 1


def _weights(path):
    return ckpt.load(path).model.state_dict()


def test_training_on_prepared_data_equals_training_on_the_text(prepared, poem, tmp_path):
    config = TrainConfig(steps=6, seq_len=16, batch_size=4, val_fraction=0.2, eval_every=3, precision="fp32")
    a = new_run(poem, None, config, tmp_path / "text.pt", **SMALL)
    list(a.run())
    b = new_run(load_prepared(prepared), None, config, tmp_path / "data.pt", **SMALL)
    list(b.run())
    assert a.vocab == b.vocab and a.vocab_counts == b.vocab_counts
    assert a.result.loss == b.result.loss and a.result.val_loss == b.result.val_loss
    wa, wb = _weights(tmp_path / "text.pt"), _weights(tmp_path / "data.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    ra, rb = ckpt.load_raw(tmp_path / "text.pt"), ckpt.load_raw(tmp_path / "data.pt")
    assert ra["text"] == rb["text"] and ra["vocab"] == rb["vocab"]


def test_resume_across_text_and_prepared_data(prepared, poem, tmp_path):
    config = TrainConfig(steps=4, seq_len=16, batch_size=4, precision="fp32")
    list(new_run(poem, None, config, tmp_path / "a.pt", **SMALL).run())
    t = resume_run(tmp_path / "a.pt", load_prepared(prepared), out=tmp_path / "b.pt", steps=8)
    list(t.run())
    straight = new_run(
        poem, None, TrainConfig(**{**config.to_dict(), "steps": 8}), tmp_path / "c.pt", **SMALL
    )
    list(straight.run())
    wb, wc = _weights(tmp_path / "b.pt"), _weights(tmp_path / "c.pt")
    assert all(torch.equal(wb[k], wc[k]) for k in wb)


def test_prepared_data_refuses_other_vocab_order_and_line_mode(prepared, poem, tmp_path):
    list(
        new_run(
            "yT" + poem, None, TrainConfig(steps=1, seq_len=8, batch_size=2), tmp_path / "o.pt", **SMALL
        ).run()
    )
    with pytest.raises(TextError):
        resume_run(tmp_path / "o.pt", load_prepared(prepared))
    with pytest.raises(ConfigError, match="line mode"):
        new_run(load_prepared(prepared), None, TrainConfig(lines=True), None)


runner = CliRunner()


def test_cli_prepare_then_train(tmp_path, poem):
    src = tmp_path / "poem.txt"
    src.write_text(poem, encoding="utf-8")
    r = runner.invoke(app, ["prepare", "--file", str(src), "--out", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    assert "prepared" in r.output and f"{len(poem):,} characters" in r.output and "uint8" in r.output
    r = runner.invoke(app, ["prepare", "-f", str(src), "-o", str(tmp_path / "p"), "--json"])
    assert json.loads(r.stdout)["characters"] == len(poem)
    args = [
        "--hidden-size",
        "16",
        "--num-layers",
        "1",
        "--steps",
        "3",
        "--seq-len",
        "16",
        "--batch-size",
        "4",
    ]
    r = runner.invoke(app, ["train", "--data", str(tmp_path / "p"), "--out", str(tmp_path / "m.pt"), *args])
    assert r.exit_code == 0, r.output
    assert "training done" in r.output
    r = runner.invoke(app, ["train", "x", "--data", str(tmp_path / "p"), *args])
    assert r.exit_code == 1 and "not several" in r.stderr
    r = runner.invoke(app, ["train", "--data", str(tmp_path / "nope"), *args])
    assert r.exit_code == 1 and "charnext prepare" in r.stderr and "Traceback" not in r.output
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\xc3(")
    r = runner.invoke(app, ["prepare", "-f", str(bad), "-o", str(tmp_path / "q")])
    assert r.exit_code == 1 and "byte offset 2" in r.stderr
