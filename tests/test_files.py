"""Several files, or a folder, as one corpus: each file a document no window spans."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from charnext.cli.app import app
from charnext.config import TrainConfig
from charnext.inference.scoring import evaluate_stream
from charnext.modeling.model import CharModel, ModelConfig
from charnext.rendering.widgets import files_line
from charnext.storage.checkpoint import load_raw
from charnext.text.prepare import load_prepared, prepare
from charnext.text.source import Source
from charnext.text.vocab import Vocab
from charnext.training.corpus import DocumentCorpus, LineCorpus, StreamCorpus, make_corpus
from charnext.training.runs import new_run

runner = CliRunner()
TINY = ["--hidden-size", "16", "--num-layers", "1", "--precision", "fp32", "--device", "cpu"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, code=1, match=""):
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], result.stderr
    assert "Traceback" not in result.output


def cycle(chars: str, n: int) -> str:
    """`n` characters cycling through `chars`: each file its own alphabet, in a checkable order."""
    return (chars * (n // len(chars) + 1))[:n]


# five documents of distinct characters, each beginning with its only capital letter; some are
# shorter than a window, one is a single character (nothing to predict)
DOCS = [
    "A" + cycle("abcde", 49),
    "F" + cycle("fgh", 22),
    "I" + cycle("ijkl", 6),
    "M",
    "N" + cycle("nopqr", 99),
]


def owner(char: str) -> int:
    return next(i for i, d in enumerate(DOCS) if char in d)


def test_no_window_spans_two_files_and_each_begins_from_zero():
    vocab = Vocab.from_text("".join(DOCS))
    corpus = make_corpus(DOCS, vocab, TrainConfig(seq_len=8, batch_size=3, seed=5, val_fraction=0.0))
    assert isinstance(corpus, DocumentCorpus) and corpus.carries_state
    begun, prev = set(), None
    for step in range(corpus.steps_per_epoch() * 6):
        b = corpus.batch(step)
        assert b.weights is not None and b.cold is not None
        for r in range(b.x.shape[0]):
            real = b.weights[r].bool()
            n = int(real.sum())
            assert n and real[:n].all()  # padding (weight 0) only after a file's end
            xs, ys = vocab.decode(b.x[r, :n]), vocab.decode(b.y[r, :n])
            doc = DOCS[owner(xs[0])]
            assert all(c in doc for c in xs + ys), (step, r, xs, ys)  # one file per window
            assert xs + ys[-1] in doc  # a contiguous piece of it
            if xs[0].isupper():  # a window that begins a file reads from the zero state
                assert bool(b.cold[r]) or b.reset
                begun.add(owner(xs[0]))
            elif not b.reset:  # one that carries the state goes on from the window before it
                _, py, pw = prev
                assert not bool(b.cold[r]) and bool(pw[r].all()) and b.x[r, 0] == py[r, -1]
        prev = (b.x, b.y, b.weights)
    # over six epochs every file is read from its beginning (the streams start at random
    # windows); "M" has nothing to predict
    assert begun == {0, 1, 2, 4}


def test_validation_draws_from_every_file_weighted_by_characters():
    docs = [cycle("abcde", 400), cycle("fgh", 200), cycle("ijkl", 100)]
    vocab = Vocab.from_text("".join(docs))
    corpus = make_corpus(docs, vocab, TrainConfig(seq_len=16, batch_size=4, val_fraction=0.1))
    assert [vocab.decode(v) for v in corpus.val_parts] == [d[-len(d) // 10 :] for d in docs]
    assert corpus.val_chars == 70 and corpus.train_chars == 630
    torch.manual_seed(0)
    model = CharModel(ModelConfig(vocab_size=len(vocab), hidden_size=8, num_layers=1))
    whole = corpus.evaluate(model, torch.device("cpu"), "fp32", None, (0, 1)).score()
    assert whole.characters == 67  # every held-out character but each part's first


def test_all_of_the_held_out_files_is_scored_as_evaluate_scores_each():
    """Held-out parts of 8,192 characters or more are scored whole as `charnext evaluate` scores
    a text (evaluate_stream), their losses weighted by characters."""
    docs = [cycle("abcde", 90_000), cycle("fgh", 85_000), cycle("ijkl", 83_000)]
    vocab = Vocab.from_text("".join(docs))
    corpus = make_corpus(docs, vocab, TrainConfig(seq_len=16, batch_size=4, val_fraction=0.1))
    torch.manual_seed(0)
    model = CharModel(ModelConfig(vocab_size=len(vocab), hidden_size=8, num_layers=1))
    whole = corpus.evaluate(model, torch.device("cpu"), "fp32", None, (0, 1)).score()
    prime = vocab.encode(corpus.start.prime) if corpus.start.prime else None
    parts = [evaluate_stream(model, v, precision="fp32", prime=prime) for v in corpus.val_parts]
    assert whole.characters == sum(p.characters for p in parts) == 25_797
    expected = sum(p.loss * p.characters for p in parts) / whole.characters
    assert whole.loss == pytest.approx(expected, rel=1e-6)


def test_lines_take_the_lines_of_every_file():
    docs = ["ann\nbob", "cy\ndee\n"]  # the first file's last line has no newline
    vocab = Vocab.from_text("".join(docs) + "\n")
    corpus = make_corpus(docs, vocab, TrainConfig(lines=True, val_fraction=0.0))
    assert isinstance(corpus, LineCorpus)
    assert sorted(vocab.decode(x) for x in corpus.train_lines) == ["ann", "bob", "cy", "dee"]


def test_a_folder_sorted_recursive_without_hidden_or_binary_files(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / ".git").mkdir()
    (tmp_path / "d" / "b.txt").write_text("bee\n")
    (tmp_path / "d" / "sub" / "a.txt").write_text("ant\n")
    (tmp_path / "d" / "a.txt").write_text("zebra Z\n")
    (tmp_path / "d" / ".hidden.txt").write_text("no\n")
    (tmp_path / "d" / ".git" / "HEAD").write_text("no\n")
    (tmp_path / "d" / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / "d" / "nul.txt").write_bytes(b"a\x00b")
    (tmp_path / "d" / "run.metrics.jsonl").write_text('{"kind": "step"}\n')  # a run's log, not a text
    source = Source.files([tmp_path / "d"])
    assert [p.relative_to(tmp_path / "d").as_posix() for p in source.paths] == ["a.txt", "b.txt", "sub/a.txt"]
    assert source.documents == ["zebra Z\n", "bee\n", "ant\n"] and source.skipped == 2
    record = source.record()
    assert record["kind"] == "files" and record["skipped"] == 2
    assert [f["length"] for f in record["files"]] == [8, 4, 4]
    # the vocabulary covers every file, in order of first appearance over them
    trainer = new_run(source, config=TrainConfig(steps=1, precision="fp32", device="cpu"), out=None,
                      hidden_size=8, num_layers=1)  # fmt: skip
    assert "".join(trainer.vocab.chars) == "zebra Z\nnt"


def _train(*args, out):
    result = run("train", *args, "--steps", "12", "--seq-len", "16", "--batch-size", "4", "--seed", "3",
                 "--eval-every", "4", "--val-fraction", "0.1", *TINY, "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    raw = load_raw(out)
    log = [json.loads(line) for line in out.with_name(out.stem + ".metrics.jsonl").read_text().splitlines()]
    log = [{k: v for k, v in e.items() if k not in ("elapsed", "chars_per_sec", "time")} for e in log]
    return raw, [e for e in log if e.get("kind") in ("step", "validation")], result


def test_a_single_file_trains_exactly_as_before(tmp_path, poem):
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "a.txt").write_text(poem)
    file_raw, file_log, _ = _train("--file", tmp_path / "one" / "a.txt", out=tmp_path / "f.pt")
    text_raw, text_log, _ = _train(poem, out=tmp_path / "t.pt")
    folder_raw, folder_log, _ = _train("--file", tmp_path / "one", out=tmp_path / "d.pt")
    assert file_log == text_log == folder_log and len(file_log) > 12
    for other in (text_raw, folder_raw):
        assert other["state_dict"].keys() == file_raw["state_dict"].keys()
        for k, v in file_raw["state_dict"].items():
            assert torch.equal(v, other["state_dict"][k]), k
    assert file_raw["source"]["kind"] == folder_raw["source"]["kind"] == "file"


@pytest.fixture
def three(tmp_path, poem):
    folder = tmp_path / "texts"
    folder.mkdir()
    for name, text in (("a.txt", poem), ("b.txt", poem.upper()), ("c.txt", poem[::-1])):
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("form", ["repeated", "glob", "folder"])
def test_train_on_every_file(three, tmp_path, form):
    files = [three / n for n in ("a.txt", "b.txt", "c.txt")]
    args = {
        "repeated": ["--file", files[0], "--file", files[1], "--file", files[2]],
        "glob": ["--file", *files],  # what the shell makes of `--file texts/*.txt`
        "folder": ["--file", three],
    }[form]
    raw, _, result = _train(*args, out=tmp_path / "m.pt")
    assert result.stdout.startswith(
        "training on texts/: loading" if form == "folder" else "training on 3 files ("
    )
    assert "on 3 files in " in result.stdout and "texts/: a.txt, b.txt, c.txt" in result.stdout
    assert all(len(line) <= 80 for line in result.stdout.splitlines()[:3])
    source = raw["provenance"]["source"] if "provenance" in raw else raw["source"]
    assert source["kind"] == "files" and [f["path"] for f in source["files"]] == [str(f) for f in files]
    assert set("TYGER") <= set(raw["vocab"])  # b.txt's capitals
    shown = run("inspect", tmp_path / "m.pt")
    assert "3 files in" in shown.stdout and "a.txt, b.txt, c.txt" in shown.stdout


def test_resume_checks_the_set_of_files(three, tmp_path):
    out = tmp_path / "m.pt"
    _train("--file", three, out=out)
    again = run("train", "--resume", out, "--steps", "16")  # no text: the three files reopened
    assert again.exit_code == 0, again.output
    files = [three / n for n in ("a.txt", "b.txt", "c.txt")]
    reordered = run("train", "--resume", out, "--steps", "18", "--file", files[2], files[0], files[1])
    assert reordered.exit_code == 0, reordered.output  # the same files in another order
    one_line_error(run("train", "--resume", out, "--file", files[0], files[1]), 1, "c.txt missing")
    (three / "d.txt").write_text("new text\n")
    one_line_error(run("train", "--resume", out, "--file", three), 1, "d.txt added")
    (three / "d.txt").unlink()
    files[1].write_text("changed\n")
    one_line_error(run("train", "--resume", out), 1, "b.txt changed")
    files[1].unlink()
    one_line_error(run("train", "--resume", out), 1, "b.txt is gone")


def test_bad_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "bin.dat").write_bytes(b"\xff\xfe\x00\x01")
    (tmp_path / "empty").mkdir()
    (tmp_path / "binaries").mkdir()
    (tmp_path / "binaries" / "x.bin").write_bytes(b"\x00\x01")
    cases = [
        (["--file", tmp_path / "a.txt", "--file", tmp_path / "missing.txt"], 1, "no such file"),
        (["--file", tmp_path / "a.txt", "--file", tmp_path / "bin.dat"], 1, "is not valid UTF-8"),
        (["--file", tmp_path / "empty"], 1, "holds no text files"),
        (["--file", tmp_path / "binaries"], 1, "holds no text files (1 not UTF-8 text)"),
        (["--file", tmp_path / "a.txt", "hello there"], 2, "give either TEXT or --file"),
        (["one", "two"], 2, "give one TEXT"),
    ]
    for args, code, match in cases:
        result = run("train", *args, "--steps", "1", *TINY, "--out", tmp_path / "m.pt")
        one_line_error(result, code, match)
        if code == 2:  # a usage error comes before anything starts
            assert "loading" not in result.stdout


def test_prepare_keeps_files_apart(three, tmp_path):
    (three / "skip.bin").write_bytes(b"\x00\x01\x02")
    result = run("prepare", "--file", three, "--out", tmp_path / "prep")
    assert result.exit_code == 0, result.output
    assert "3 files kept apart (1 not UTF-8 text left out)" in " ".join(result.stdout.split())
    data = load_prepared(tmp_path / "prep")
    texts = [(three / n).read_text() for n in ("a.txt", "b.txt", "c.txt")]
    assert data.lengths == [len(t) for t in texts]
    assert data.vocab.decode(data.tokens) == "".join(texts)
    corpus = make_corpus(
        data.tokens, data.vocab, TrainConfig(seq_len=16, batch_size=4, val_fraction=0.1), lengths=data.lengths
    )
    assert isinstance(corpus, DocumentCorpus) and len(corpus.val_parts) == 3
    # the same files trained with --file resume from the prepared folder: the same fingerprint
    out = tmp_path / "m.pt"
    _train("--file", three / "a.txt", "--file", three / "b.txt", "--file", three / "c.txt", out=out)
    resumed = run("train", "--resume", out, "--data", tmp_path / "prep", "--steps", "14")
    assert resumed.exit_code == 0, resumed.output
    # a single file prepares as it always did: no documents
    one = prepare(three / "a.txt", tmp_path / "one")
    assert one.files == 1 and load_prepared(tmp_path / "one").lengths is None
    assert isinstance(
        make_corpus(load_prepared(tmp_path / "one").tokens, data.vocab, TrainConfig()), StreamCorpus
    )


def test_the_files_line_stays_short():
    paths = tuple(f"/data/texts/ch{i:02d}.txt" for i in range(12))
    line = "on " + files_line(paths)
    assert line.startswith("on 12 files in ") and line.endswith(" more") and len(line) <= 60
    assert ": ch00.txt, ch01.txt and 10 more" in line
    deep = "on " + files_line(tuple(f"/a/very/deep/folder/of/many/names/x{i}.txt" for i in range(40)))
    assert len(deep) <= 60 and "x0.txt" in deep and deep.endswith(" more")
    assert files_line(("/x/a.txt", "/x/b.txt"), 1).endswith("a.txt, b.txt (1 not UTF-8 text left out)")
