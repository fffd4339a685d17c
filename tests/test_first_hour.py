"""What a newcomer reads: figures with something to compare them to, and what to do next."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from typer.testing import CliRunner

from charnext import api
from charnext.cli.app import app
from charnext.errors import ConfigError, InvalidValue

TINY = ["--hidden-size", "16", "--num-layers", "1", "--precision", "fp32", "--device", "cpu"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_evaluate_shows_the_training_loss_and_the_frequencies_model(tmp_path, poem):
    out = tmp_path / "poem.pt"
    api.train(poem, out=out, steps=30, hidden_size=16, num_layers=1, val_fraction=0.2)
    ckpt = api.load(out)
    text = poem[:400]
    r = api.evaluate(ckpt, text)
    assert r.training_val_loss == pytest.approx(ckpt.history["val_loss"][-1])
    # the frequencies model: add-one smoothed counts of the training text, on every scored character
    counts = ckpt.raw["vocab_counts"]
    total = sum(counts) + len(counts)
    expected = -sum(math.log((counts[ckpt.vocab.chars.index(c)] + 1) / total) for c in text[1:]) / len(
        text[1:]
    )
    assert r.unigram_loss == pytest.approx(expected)
    assert r.loss < r.unigram_loss  # even a briefly trained model beats the frequencies alone
    shown = run("evaluate", text, "-c", out)
    assert shown.exit_code == 0, shown.output
    assert f"{r.training_val_loss:.4f} nats/char on its own held-out text" in shown.stdout
    assert f"{r.unigram_loss:.4f} nats/char knowing only how often" in shown.stdout
    data = run("evaluate", text, "-c", out, "--json")
    assert '"unigram_loss"' in data.stdout and '"training_val_loss"' in data.stdout


def test_unigram_loss_of_a_line_model_counts_each_line_end(tmp_path, names):
    out = tmp_path / "names.pt"
    api.train(names, out=out, steps=5, lines=True, hidden_size=8, num_layers=1)
    ckpt = api.load(out)
    counts = dict(zip(ckpt.vocab.chars, ckpt.raw["vocab_counts"]))
    scored = Counter("emma\nava\n")
    total = sum(counts.values()) + len(counts)
    expected = -sum(n * math.log((counts[c] + 1) / total) for c, n in scored.items()) / 9
    assert api.evaluate(ckpt, "emma\nava").unigram_loss == pytest.approx(expected)


def test_train_ends_with_the_next_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short relative path: the line fits the 80 columns
    result = run("train", "hihello", "--steps", 3, "--out", "hi.pt", *TINY)
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip().splitlines()[-1] == "next: charnext predict hihello --length 200 -c hi.pt"
    lines = run("train", "hello\nthere", "--lines", "--steps", 3, "--out", "n.pt", *TINY).stdout.splitlines()
    assert lines[-1] == "next: charnext predict --length 40 --num-samples 5 -c n.pt"


def test_resumed_summary_separates_the_session_from_the_run(tmp_path):
    out = tmp_path / "hi.pt"
    assert run("train", "hihello", "--steps", 4, "--out", out, *TINY).exit_code == 0
    result = run("train", "hihello", "--resume", out, "--steps", 10)
    assert result.exit_code == 0, result.output
    assert "this session   6 steps in" in result.stdout
    assert "whole run      10 steps in" in result.stdout


def test_api_takes_the_cli_duration_strings():
    result = api.train("hihello", out=None, max_time="1s", hidden_size=8, num_layers=1)
    assert result.reason == "max-time" and result.steps > 0
    with pytest.raises(
        InvalidValue, match="max_time must be a duration such as 90s, 10m, 2h or 1h30m, not '2x'"
    ):
        api.train("hihello", out=None, max_time="2x")


def test_api_names_the_options_that_exist():
    with pytest.raises(ConfigError) as e:
        api.train("hihello", out=None, hidden=32)
    message = str(e.value)
    assert "unknown option 'hidden'; did you mean hidden_size?" in message
    assert "\n" not in message
    for name in ("hidden_size", "num_layers", "steps", "max_time", "lr", "seq_len"):
        assert name in message


def test_step_budgets_check_a_tenth_of_the_way_by_steps_alone():
    from charnext.config import TrainConfig
    from charnext.training.schedule import MAX_EVAL_SHARE, Schedule

    plan = Schedule.for_run(TrainConfig(steps=100), 10, 10_000, 100)
    assert plan.eval_every == 10 and plan.checks(100) == 10
    # by steps alone, however long the latest check took: the same steps on any machine
    assert plan.eval_due(10, since_eval=0.0, eval_seconds=100.0)
    assert not plan.eval_due(15, since_eval=1000.0)
    given = Schedule.for_run(TrainConfig(steps=100, eval_every=7), 10, 10_000, 100)
    assert given.eval_due(14, 0.0, eval_seconds=100.0) and not given.eval_due(20, 0.0)
    timed = Schedule.for_run(TrainConfig(max_time=100.0), 10, 10_000, 100)
    assert not timed.eval_due(5, since_eval=9.9) and timed.eval_due(6, since_eval=10.0)  # a tenth
    # a check that took 2 s waits until the time since it began is 1/MAX_EVAL_SHARE times that
    assert not timed.eval_due(7, since_eval=10.0, eval_seconds=2.0)
    assert timed.eval_due(8, since_eval=2.0 / MAX_EVAL_SHARE, eval_seconds=2.0)
    timed_given = Schedule.for_run(TrainConfig(max_time=100.0, eval_every=5), 10, 10_000, 100)
    assert timed_given.eval_due(5, since_eval=0.0) and not timed_given.eval_due(6, since_eval=99.0)


def test_a_short_step_budget_checks_a_small_fixed_sample(tmp_path, poem):
    from charnext.training.runs import new_run
    from charnext.training.validation import MIN_READ, Sample

    config = api.TrainConfig(steps=20, batch_size=4, seq_len=16)
    trainer = new_run(poem * 200, None, config, tmp_path / "p.pt", hidden_size=8, num_layers=1)
    assert trainer.val_chars > 10_000
    for _ in trainer.run():
        pass
    assert trainer.history["val_step"] == list(range(2, 21, 2))
    # 20 x 64 characters trained: the smallest sample, 32 windows of 128 characters
    sample = Sample.from_dict(trainer.record.val_sample)
    assert sample == trainer.corpus.sample(MIN_READ) and (sample.windows, sample.chars) == (32, 4096)
    # nor does the final figure score more: that would cost more than the 20 steps
    assert (trainer.result.val_scored, trainer.result.val_all) == (4096, False)


def test_train_says_a_word_before_the_slow_part(tmp_path):
    result = run("train", "hihello", "--steps", 2, "--out", tmp_path / "h.pt", *TINY)
    assert result.stdout.splitlines()[0] == "training on a text of 7 characters: loading..."
    missing = run("train", "--file", tmp_path / "nothere.txt")
    assert missing.exit_code == 1 and missing.stdout == ""  # an error is not preceded by it
    quiet = run("train", "hihello", "--steps", 2, "--out", tmp_path / "j.pt", "--json", *TINY)
    assert quiet.stdout.lstrip().startswith("{")


def test_the_first_word_comes_before_torch_is_imported(tmp_path):
    """The line is written before `import torch` starts (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = (
        "import sys, charnext.cli.train_cmd as c\n"
        "write = sys.stdout.write\n"
        "mark = lambda: ' (torch loaded)' if 'torch' in sys.modules else ''\n"
        "sys.stdout.write = lambda s: write(s.rstrip() + mark() + '\\n')\n"
        "c._say_starting('hihello', [], None, None)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert out.stdout == "training on a text of 7 characters: loading...\n"


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_inspect_of_an_exported_file_says_what_it_is(tmp_path, poem, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    path = tmp_path / "poem.pt"
    api.train(
        poem + "".join(chr(0x41 + i) for i in range(26)), out=path, steps=3, hidden_size=8, num_layers=1
    )
    assert run("export", path, "--out", tmp_path / "m.safetensors").exit_code == 0
    shown = run("inspect", tmp_path / "m.safetensors")
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert "inference-only (charnext export)" in out and "trained for   3 steps" in out
    assert "-," not in out and "sha256 -" not in out and "(no history)" not in out  # no placeholders
    vocab = len(api.load(path).vocab)
    assert f"vocabulary: {vocab} characters" in out
    assert f"and {vocab - 16} more (--json lists all)" in out
    assert max(len(line) for line in out.splitlines()) <= columns
    whole = run("inspect", path).stdout
    assert f"and {vocab - 16} more (--json lists all)" in whole and "inference-only" not in whole
